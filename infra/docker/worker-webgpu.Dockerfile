# syntax=docker/dockerfile:1
# A scaleot GPU worker on the WebGPU backend: Dawn's Node binding (npm `webgpu`, prebuilt dawn.node)
# and @tensorflow/tfjs-backend-webgpu 4.22.0 over Vulkan. Everything installs from the npm registry and
# Debian: no CUDA toolkit in the image and no download at install time, so it builds offline from a
# Debian mirror + npm cache and runs on any NVIDIA driver with Vulkan (every data-centre driver >= 450).
# Build from the repository root:
#   docker build -f infra/docker/worker-webgpu.Dockerfile -t scaleot/worker-webgpu:dev .
#
# What the GPU needs at run time (docs/gpu.md):
# - the Vulkan loader (libvulkan1, installed here);
# - NVIDIA's Vulkan ICD and driver libraries, which the NVIDIA container toolkit mounts into the
#   container only when NVIDIA_DRIVER_CAPABILITIES includes `graphics` (the CUDA images default to
#   compute,utility: Vulkan then finds no driver);
# - an ICD manifest naming libGLX_nvidia.so.0: older toolkits mount the libraries but not the JSON,
#   so the image carries one (the loader ignores it where the library is absent).

FROM node:20.20.2-bookworm-slim AS node

FROM node AS manifests
WORKDIR /src
COPY . .
RUN mkdir -p /out \
 && cp package.json package-lock.json /out/ \
 && for d in packages/* apps/*; do \
      if [ -f "$d/package.json" ]; then mkdir -p "/out/$d" && cp "$d/package.json" "/out/$d/"; fi; \
    done

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
    done \
 && find /out -name '*.tsbuildinfo' -delete

FROM node AS deps
WORKDIR /app
COPY --from=manifests /out/ ./
RUN --mount=type=cache,target=/root/.npm npm ci --omit=dev --no-audit --no-fund \
 && test -f node_modules/webgpu/dist/linux-x64/dawn.node \
 && test "$(node -p "require('@tensorflow/tfjs-backend-webgpu/package.json').version")" = 4.22.0 \
 && rm -rf node_modules/webgpu/dist/darwin-* node_modules/webgpu/dist/win32-* \
 && if [ "$(uname -m)" = x86_64 ]; then rm -rf node_modules/webgpu/dist/linux-arm64; else rm -rf node_modules/webgpu/dist/linux-x64; fi

FROM node AS runtime
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends libvulkan1 \
 && rm -rf /var/lib/apt/lists/* \
 && mkdir -p /etc/vulkan/icd.d \
 && printf '%s\n' '{"file_format_version": "1.0.0", "ICD": {"library_path": "libGLX_nvidia.so.0", "api_version": "1.3"}}' \
      >/etc/vulkan/icd.d/nvidia_icd.json
ENV NODE_ENV=production \
    SCALEOT_STORAGE_DIR=/data \
    SCALEOT_LOG_LEVEL=info \
    SCALEOT_BACKEND=webgpu \
    SCALEOT_WORKER_GROUP=gpu \
    SCALEOT_WORKER_CONCURRENCY=1 \
    NVIDIA_VISIBLE_DEVICES=all \
    NVIDIA_DRIVER_CAPABILITIES=compute,utility,graphics
RUN groupadd --gid 1000 scaleot \
 && useradd --uid 1000 --gid 1000 --no-create-home --home-dir /app --shell /usr/sbin/nologin scaleot \
 && mkdir -p /data && chown 1000:1000 /data
WORKDIR /app
COPY --from=deps /app/ ./
COPY --from=build /out/ ./
COPY models ./models
USER 1000:1000
EXPOSE 9090
HEALTHCHECK --interval=15s --timeout=5s --start-period=60s --retries=3 \
  CMD ["node", "-e", "fetch('http://127.0.0.1:9090/healthz').then((r) => process.exit(r.ok ? 0 : 1), () => process.exit(1))"]
STOPSIGNAL SIGTERM
CMD ["node", "apps/worker/dist/main.js"]
