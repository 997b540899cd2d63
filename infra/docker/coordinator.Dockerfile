# syntax=docker/dockerfile:1
# The scaleot coordinator: HTTP API + /healthz /readyz /metrics on 8080, ZeroMQ params publish on 5555
# and results collect on 5556. Build from the repository root:
#   docker build -f infra/docker/coordinator.Dockerfile -t scaleot/coordinator:dev .
# Base images are pinned to exact tags; CI may replace them with @sha256 digests (docs/deployment.md).

# --- manifests: package.json files + lock only, so the dependency layers rebuild only when they change
FROM node:20.20.2-bookworm-slim AS manifests
WORKDIR /src
COPY . .
RUN mkdir -p /out \
 && cp package.json package-lock.json /out/ \
 && for d in packages/* apps/*; do \
      if [ -f "$d/package.json" ]; then mkdir -p "/out/$d" && cp "$d/package.json" "/out/$d/"; fi; \
    done

# --- build: all dependencies, compile every workspace, keep package.json + dist of each
FROM node:20.20.2-bookworm-slim AS build
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

# --- deps: production dependencies only
FROM node:20.20.2-bookworm-slim AS deps
WORKDIR /app
COPY --from=manifests /out/ ./
RUN --mount=type=cache,target=/root/.npm npm ci --omit=dev --no-audit --no-fund

# --- runtime: code owned by root and read-only for the service user (uid 1000, "node" in this image)
FROM node:20.20.2-bookworm-slim AS runtime
ENV NODE_ENV=production \
    SCALEOT_STORAGE_DIR=/data \
    SCALEOT_LOG_LEVEL=info \
    SCALEOT_BACKEND=wasm \
    SCALEOT_ZMQ_PARAMS_PORT=5555 \
    SCALEOT_ZMQ_RESULTS_PORT=5556
WORKDIR /app
COPY --from=deps /app/ ./
COPY --from=build /out/ ./
COPY models ./models
COPY data ./data
# A named volume mounted on /data starts with this directory's owner, so uid 1000 can write to it.
RUN mkdir -p /data && chown 1000:1000 /data
USER 1000:1000
EXPOSE 8080 5555 5556
HEALTHCHECK --interval=15s --timeout=5s --start-period=30s --retries=3 \
  CMD ["node", "-e", "fetch('http://127.0.0.1:8080/healthz').then((r) => process.exit(r.ok ? 0 : 1), () => process.exit(1))"]
STOPSIGNAL SIGTERM
CMD ["node", "apps/coordinator/dist/main.js"]
