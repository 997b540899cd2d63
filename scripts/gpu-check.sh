#!/usr/bin/env bash
# The webgpu GPU check (issue #17): adapter info, reference logits on webgpu, adapter-tuning tokens/s
# on the tiny GPT-2 and on sotu-llama-24l, and the machine's own PyTorch (fp32, same job) for the
# ratio; writes one JSON file.
#
#   scripts/gpu-check.sh pack   here (Node, built repo, ../shared/fixtures): writes .bench/gpu-check/
#                               (~32 MB: stripped Node runtime, the check bundled with esbuild, Dawn's
#                               dawn.node, the fixtures it needs beyond the repo, the Vulkan loader .deb)
#   scripts/gpu-check.sh run    on the GPU machine (no Node needed) or here: unpacks the bundle, brings
#                               the Vulkan loader when the system has none, points Vulkan at NVIDIA's
#                               ICD when present, runs the check; JSON to $OUT/gpu-check.json (or
#                               .bench/gpu-check-out/ when OUT is unset)
#
# Environment: SCALEOT_WEBGPU_SOFTWARE=1 accepts a software adapter (CPU-only machines);
# GPU_CHECK_JOB=small runs a short job (2+1 steps, batch 2, 64 tokens) for software adapters;
# GPU_CHECK_STEPS / _WARMUP / _BATCH / _MICRO_BATCH / _SEQ override the job (default 8 timed steps after
# 2 warm-up steps, batch 16 = micro-batch, 256 tokens, the tune defaults' shape).
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
BUNDLE=$ROOT/.bench/gpu-check
FIXTURES=${GPU_CHECK_FIXTURES:-$ROOT/../shared/fixtures}

pack() {
  command -v node >/dev/null || { echo "gpu-check: pack needs Node (run it on the development machine)" >&2; exit 2; }
  [ -f packages/offsite/dist/index.js ] || npx turbo run build --output-logs=errors-only
  rm -rf "$BUNDLE" && mkdir -p "$BUNDLE/stage/app/node_modules/webgpu/dist/linux-x64" "$BUNDLE/stage/fixtures/models"
  local stage=$BUNDLE/stage
  # One ESM file for the check and every package it imports; dawn.node stays a real file beside it.
  npx esbuild scripts/gpu-check.mjs --bundle --platform=node --format=esm --target=node20 --minify \
    --external:webgpu --external:@tensorflow/tfjs-backend-wasm \
    --banner:js="import { createRequire as __cr } from 'node:module'; const require = __cr(import.meta.url);" \
    --outfile="$stage/app/gpu-check.mjs" --log-level=warning
  cp node_modules/webgpu/index.js node_modules/webgpu/package.json "$stage/app/node_modules/webgpu/"
  cp node_modules/webgpu/dist/linux-x64/dawn.node "$stage/app/node_modules/webgpu/dist/linux-x64/"
  cp tools/pytorch/tune_step.py "$stage/app/"
  cp "$(command -v node)" "$stage/node" && strip "$stage/node" 2>/dev/null || true
  # Fixtures beyond the repo: only the reference rows the check compares, and sotu-llama-24l.
  node -e '
    const fs = require("fs"); const [src, dst] = process.argv.slice(1);
    const ref = JSON.parse(fs.readFileSync(src + "/reference-logits.json", "utf8"));
    fs.writeFileSync(dst + "/reference-logits.json", JSON.stringify({ models: { tiny: ref.models.tiny } }));
    const fam = JSON.parse(fs.readFileSync(src + "/families-reference.json", "utf8"));
    fs.writeFileSync(dst + "/families-reference.json", JSON.stringify({ models: { sotu_llama_24l: fam.models.sotu_llama_24l } }));
  ' "$FIXTURES" "$stage/fixtures"
  cp -r "$FIXTURES/models/sotu-llama-24l" "$stage/fixtures/models/"
  chmod -R u+w "$stage/fixtures"
  # The Vulkan loader (the GPU machine has NVIDIA's ICD but may lack libvulkan.so.1).
  (cd "$stage" && apt-get download libvulkan1 >/dev/null 2>&1) || echo "gpu-check: apt-get download libvulkan1 failed; the target must have the Vulkan loader" >&2
  tar -C "$stage" -cf - . | xz -T2 -6 >"$BUNDLE/bundle.tar.xz"
  rm -rf "$stage"
  echo "gpu-check: $(du -h "$BUNDLE/bundle.tar.xz" | cut -f1) bundle at .bench/gpu-check/bundle.tar.xz (carry .bench/gpu-check)"
}

run() {
  [ -f "$BUNDLE/bundle.tar.xz" ] || { echo "gpu-check: no bundle; run scripts/gpu-check.sh pack first (where Node is)" >&2; exit 2; }
  local dir=${GPU_CHECK_DIR:-/tmp/scaleot-gpu-check}
  rm -rf "$dir" && mkdir -p "$dir" && xz -dc "$BUNDLE/bundle.tar.xz" | tar -C "$dir" -xf -
  if ! ldconfig -p 2>/dev/null | grep -q 'libvulkan.so.1'; then
    for deb in "$dir"/libvulkan1_*.deb; do [ -f "$deb" ] && dpkg-deb -x "$deb" "$dir/sysroot"; done
    export LD_LIBRARY_PATH="$dir/sysroot/usr/lib/x86_64-linux-gnu${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
  fi
  local icd=/usr/local/nvidia/share/vulkan/icd.d/nvidia_icd.json
  if [ -z "${VK_DRIVER_FILES:-}" ] && [ -f "$icd" ]; then export VK_DRIVER_FILES=$icd; fi
  local out=${OUT:-$ROOT/.bench/gpu-check-out}  # never inside the carried bundle folder
  mkdir -p "$out"
  local small=0
  [ "${GPU_CHECK_JOB:-}" = small ] && small=1
  (nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader 2>/dev/null || echo "no nvidia-smi") | sed 's/^/gpu-check: /' >&2
  set +e
  "$dir/node" "$dir/app/gpu-check.mjs" \
    --fixtures "$dir/fixtures" --tiny "$ROOT/models/sotu-gpt2-tiny" --data "$ROOT/data" \
    --torch "$dir/app/tune_step.py" --out "$out/gpu-check.json" \
    --steps "${GPU_CHECK_STEPS:-$([ $small = 1 ] && echo 2 || echo 8)}" \
    --warmup "${GPU_CHECK_WARMUP:-$([ $small = 1 ] && echo 1 || echo 2)}" \
    --batch "${GPU_CHECK_BATCH:-$([ $small = 1 ] && echo 2 || echo 16)}" \
    --micro-batch "${GPU_CHECK_MICRO_BATCH:-${GPU_CHECK_BATCH:-$([ $small = 1 ] && echo 2 || echo 16)}}" \
    --seq "${GPU_CHECK_SEQ:-$([ $small = 1 ] && echo 64 || echo 256)}"
  local rc=$?
  set -e
  echo "gpu-check: exit $rc; JSON at $out/gpu-check.json" >&2
  cat "$out/gpu-check.json" 2>/dev/null || true
  return $rc
}

case "${1:-run}" in
  pack) pack ;;
  run) run ;;
  *) echo "usage: scripts/gpu-check.sh [pack|run]" >&2; exit 2 ;;
esac
