# A scaleot GPU worker: @tensorflow/tfjs-node-gpu 4.22.0 on CUDA, SCALEOT_BACKEND=auto (tensorflow when
# the native binding loads and a GPU is visible, else wasm). Build from the repository root:
#   docker build -f infra/docker/worker-gpu.Dockerfile -t scaleot/worker-gpu:dev .
#
# Why CUDA 11.8 and not 12.x: tfjs-node-gpu 4.22.0 wraps libtensorflow 2.9.1, which is linked against
# the CUDA 11 sonames (libcudart.so.11.0, libcublas.so.11, libcudnn.so.8). A CUDA 12 image lacks them
# and the binding falls back to the CPU. 11.8 is the last CUDA 11 release (minor-version compatible
# with the 11.2 build); it needs driver >= 520 (any current data-centre driver). Hopper GPUs (sm_90)
# run TF 2.9's PTX through the driver's JIT: the first start compiles kernels into CUDA_CACHE_PATH.

# The Node 20 base; the offline e2e run (infra/e2e/compose-e2e.sh) passes one made with debootstrap.
ARG BASE_IMAGE=node:20.20.2-bookworm-slim

FROM ${BASE_IMAGE} AS node

# --- manifests: package.json files + lock only, so the dependency layers rebuild only when they change
FROM node AS manifests
WORKDIR /src
COPY . .
RUN mkdir -p /out \
 && cp package.json package-lock.json /out/ \
 && for d in packages/* apps/*; do \
      if [ -f "$d/package.json" ]; then mkdir -p "/out/$d" && cp "$d/package.json" "/out/$d/"; fi; \
    done

# --- build: all dependencies, compile every workspace, keep package.json + dist of each
FROM node AS build
WORKDIR /app
ENV TURBO_TELEMETRY_DISABLED=1 CI=1
COPY --from=manifests /out/ ./
RUN --mount=type=cache,target=/root/.npm npm ci --no-audit --no-fund
COPY . .
RUN npm run build \
 && mkdir -p /out \
 && for d in packages/* apps/*; do \
      if [ -d "$d/dist" ]; then mkdir -p "/out/$d" && cp -R "$d/package.json" "$d/dist" "/out/$d/"; fi; \
      if [ -d "$d/bin" ]; then cp -R "$d/bin" "/out/$d/"; fi; \
    done \
 && find /out -name '*.tsbuildinfo' -delete

# --- cuda-node: the CUDA runtime + cuDNN image with the same Node 20 binary as the other images
FROM nvidia/cuda:11.8.0-cudnn8-runtime-ubuntu22.04 AS cuda-node
COPY --from=node /usr/local/bin/node /usr/local/bin/node
COPY --from=node /usr/local/lib/node_modules/npm /usr/local/lib/node_modules/npm
RUN ln -s ../lib/node_modules/npm/bin/npm-cli.js /usr/local/bin/npm \
 && ln -s ../lib/node_modules/npm/bin/npx-cli.js /usr/local/bin/npx \
 && apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends ca-certificates \
 && rm -rf /var/lib/apt/lists/* \
 && node --version

# --- deps: production dependencies, then tfjs-node-gpu, installed on the runtime's own glibc. Its
# install script downloads libtensorflow (GPU build) and the prebuilt N-API binding, so this stage needs
# network access; the compiler is only for a fallback source build of the binding.
FROM cuda-node AS deps
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends python3 make g++ \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /app
COPY --from=manifests /out/ ./
RUN --mount=type=cache,target=/root/.npm npm ci --omit=dev --no-audit --no-fund \
 && npm install --no-save --omit=dev --no-audit --no-fund -E @tensorflow/tfjs-node-gpu@4.22.0 \
 && test -f node_modules/@tensorflow/tfjs-node-gpu/deps/lib/libtensorflow.so.2.9.1 \
 && ls node_modules/@tensorflow/tfjs-node-gpu/lib/napi-v*/tfjs_binding.node \
 && test "$(node -p "require('@tensorflow/tfjs/package.json').version")" = 4.22.0

# --- runtime
FROM cuda-node AS runtime
ENV NODE_ENV=production \
    SCALEOT_STORAGE_DIR=/data \
    SCALEOT_LOG_LEVEL=info \
    SCALEOT_BACKEND=auto \
    SCALEOT_WORKER_GROUP=gpu \
    SCALEOT_WORKER_CONCURRENCY=1 \
    TF_CPP_MIN_LOG_LEVEL=1 \
    TF_FORCE_GPU_ALLOW_GROWTH=true \
    CUDA_CACHE_PATH=/tmp/cuda-cache \
    CUDA_CACHE_MAXSIZE=2147483648
RUN groupadd --gid 1000 scaleot \
 && useradd --uid 1000 --gid 1000 --no-create-home --home-dir /app --shell /usr/sbin/nologin scaleot \
 && mkdir -p /data && chown 1000:1000 /data
WORKDIR /app
COPY --from=deps /app/ ./
COPY --from=build /out/ ./
# The commands on PATH: scaleot, scaleot-coordinator, scaleot-worker (their launchers run dist/main.js).
RUN ln -s /app/apps/cli/bin/scaleot.js /usr/local/bin/scaleot \
 && ln -s /app/apps/coordinator/bin/scaleot-coordinator.js /usr/local/bin/scaleot-coordinator \
 && ln -s /app/apps/worker/bin/scaleot-worker.js /usr/local/bin/scaleot-worker
COPY models ./models
USER 1000:1000
EXPOSE 9090
HEALTHCHECK --interval=15s --timeout=5s --start-period=60s --retries=3 \
  CMD ["node", "-e", "fetch('http://127.0.0.1:9090/healthz').then((r) => process.exit(r.ok ? 0 : 1), () => process.exit(1))"]
STOPSIGNAL SIGTERM
CMD ["node", "apps/worker/dist/main.js"]
