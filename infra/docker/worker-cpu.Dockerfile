# A scaleot CPU worker: tfjs wasm backend (4 GiB wasm heap per process), health and metrics on 9090,
# SIGTERM drains (finishes or hands back its jobs) before exiting. Build from the repository root:
#   docker build -f infra/docker/worker-cpu.Dockerfile -t scaleot/worker-cpu:dev .
# The first two stages are the coordinator image's: BuildKit shares their cache between both builds.
# The deps stage builds @scaleot/blas (OpenBLAS GEMM, N-API) against Debian's libopenblas-dev; the
# runtime has libopenblas0, so the wasm backend's matmuls run on OpenBLAS (docs/deployment.md).

# --- manifests: package.json files + lock only, so the dependency layers rebuild only when they change
# The Node 20 base; the offline e2e run (infra/e2e/compose-e2e.sh) passes one made with debootstrap.
ARG BASE_IMAGE=node:20.20.2-bookworm-slim

FROM ${BASE_IMAGE} AS manifests
WORKDIR /src
COPY . .
RUN mkdir -p /out \
 && cp package.json package-lock.json /out/ \
 && for d in packages/* apps/*; do \
      if [ -f "$d/package.json" ]; then mkdir -p "/out/$d" && cp "$d/package.json" "/out/$d/"; fi; \
    done \
 && cp -R packages/blas/binding.gyp packages/blas/native packages/blas/scripts /out/packages/blas/

# --- build: all dependencies, compile every workspace, keep package.json + dist of each
FROM ${BASE_IMAGE} AS build
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

# --- deps: production dependencies only, and the OpenBLAS addon built from source against Node's own
# headers (npm_config_nodedir: node-gyp downloads nothing); the image refuses to build without it.
FROM ${BASE_IMAGE} AS deps
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends python3 make g++ libopenblas-dev \
 && rm -rf /var/lib/apt/lists/*
ENV npm_config_nodedir=/usr/local
WORKDIR /app
COPY --from=manifests /out/ ./
RUN --mount=type=cache,target=/root/.npm npm ci --omit=dev --no-audit --no-fund \
 && test -f packages/blas/build/Release/scaleot_blas.node \
 && rm -rf packages/blas/build/Release/obj.target packages/blas/build/Release/.deps

# --- runtime: code owned by root and read-only for the service user (uid 1000, "node" in this image)
FROM ${BASE_IMAGE} AS runtime
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends libopenblas0 \
 && rm -rf /var/lib/apt/lists/*
ENV NODE_ENV=production \
    SCALEOT_NATIVE_GEMM=1 \
    OPENBLAS_NUM_THREADS=1 \
    SCALEOT_STORAGE_DIR=/data \
    SCALEOT_LOG_LEVEL=info \
    SCALEOT_BACKEND=wasm \
    SCALEOT_WORKER_GROUP=cpu \
    SCALEOT_WORKER_CONCURRENCY=1
WORKDIR /app
COPY --from=deps /app/ ./
COPY --from=build /out/ ./
COPY models ./models
# The commands on PATH: scaleot, scaleot-coordinator, scaleot-worker (their launchers run dist/main.js).
RUN ln -s /app/apps/cli/bin/scaleot.js /usr/local/bin/scaleot \
 && ln -s /app/apps/coordinator/bin/scaleot-coordinator.js /usr/local/bin/scaleot-coordinator \
 && ln -s /app/apps/worker/bin/scaleot-worker.js /usr/local/bin/scaleot-worker \
 && mkdir -p /data && chown 1000:1000 /data
USER 1000:1000
EXPOSE 9090
HEALTHCHECK --interval=15s --timeout=5s --start-period=30s --retries=3 \
  CMD ["node", "-e", "fetch('http://127.0.0.1:9090/healthz').then((r) => process.exit(r.ok ? 0 : 1), () => process.exit(1))"]
STOPSIGNAL SIGTERM
CMD ["node", "apps/worker/dist/main.js"]
