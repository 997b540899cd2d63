# The scaleot coordinator: HTTP API + /healthz /readyz on 8080, /metrics on 9090, ZeroMQ params publish on 5555
# and results collect on 5556. Build from the repository root:
#   docker build -f infra/docker/coordinator.Dockerfile -t scaleot/coordinator:dev .
# Base images are pinned to exact tags; CI may replace them with @sha256 digests (docs/deployment.md).

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

# --- deps: production dependencies only
FROM ${BASE_IMAGE} AS deps
WORKDIR /app
COPY --from=manifests /out/ ./
RUN --mount=type=cache,target=/root/.npm npm ci --omit=dev --no-audit --no-fund

# --- runtime: code owned by root and read-only for the service user (uid 1000, "node" in this image)
FROM ${BASE_IMAGE} AS runtime
ENV NODE_ENV=production \
    SCALEOT_STORAGE_DIR=/data \
    SCALEOT_LOG_LEVEL=info \
    SCALEOT_BACKEND=wasm \
    SCALEOT_NATIVE_GEMM=0 \
    SCALEOT_ZMQ_PARAMS_PORT=5555 \
    SCALEOT_ZMQ_RESULTS_PORT=5556 \
    SCALEOT_METRICS_PORT=9090
WORKDIR /app
COPY --from=deps /app/ ./
COPY --from=build /out/ ./
COPY models ./models
COPY data ./data
# A named volume mounted on /data starts with this directory's owner, so uid 1000 can write to it.
# The commands on PATH: scaleot, scaleot-coordinator, scaleot-worker (their launchers run dist/main.js).
RUN ln -s /app/apps/cli/bin/scaleot.js /usr/local/bin/scaleot \
 && ln -s /app/apps/coordinator/bin/scaleot-coordinator.js /usr/local/bin/scaleot-coordinator \
 && ln -s /app/apps/worker/bin/scaleot-worker.js /usr/local/bin/scaleot-worker \
 && mkdir -p /data && chown 1000:1000 /data
USER 1000:1000
EXPOSE 8080 9090 5555 5556
HEALTHCHECK --interval=15s --timeout=5s --start-period=30s --retries=3 \
  CMD ["node", "-e", "fetch('http://127.0.0.1:8080/healthz').then((r) => process.exit(r.ok ? 0 : 1), () => process.exit(1))"]
STOPSIGNAL SIGTERM
CMD ["node", "apps/coordinator/dist/main.js"]
