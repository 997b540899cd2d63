#!/usr/bin/env bash
# npm run e2e:compose — opt-in, not part of npm test. Proves the images and the compose stack work
# without any registry: builds a Debian bookworm base offline-capable (debootstrap from the Debian
# mirror + this machine's Node, `docker import`), builds the coordinator and CPU worker images on it
# (BASE_IMAGE build arg), starts Redis + coordinator + two workers with Docker Compose, runs one data
# owner's managed tuning request through the API to its report, and tears everything down.
# Needs: a running Docker daemon, docker compose (v2 plugin) or docker-compose, debootstrap (root).
set -euo pipefail
cd "$(dirname "$0")/../.."
started=$(date +%s)
step() { printf '\n== %s (%ss)\n' "$*" "$(( $(date +%s) - started ))"; }

NODE_VERSION=$(node -p process.versions.node)
BASE=${SCALEOT_E2E_BASE:-scaleot/base:bookworm-node$NODE_VERSION}
ROOTFS=${SCALEOT_E2E_ROOTFS:-/var/tmp/scaleot-rootfs}
MIRROR=${SCALEOT_E2E_MIRROR:-http://deb.debian.org/debian}
PROJECT=scaleot-e2e
export SCALEOT_E2E_BASE=$BASE

docker info >/dev/null 2>&1 || { echo "docker daemon not reachable: install docker.io and start dockerd" >&2; exit 1; }
# A client that builds with BuildKit (the Dockerfiles use RUN --mount): the buildx plugin, or a
# Docker < 23 client (Debian's docker.io 20.10) whose BuildKit is built in.
BUILDER=()
for client in docker /usr/bin/docker; do
  command -v "$client" >/dev/null || continue
  if "$client" buildx version >/dev/null 2>&1; then BUILDER=("$client" buildx build --load); break; fi
  major=$("$client" version --format '{{.Client.Version}}' 2>/dev/null | cut -d. -f1)
  if [ -n "$major" ] && [ "$major" -lt 23 ]; then BUILDER=(env DOCKER_BUILDKIT=1 "$client" build); break; fi
done
[ ${#BUILDER[@]} -gt 0 ] || { echo "no BuildKit-capable docker client: install the buildx plugin (docker-buildx)" >&2; exit 1; }
if docker compose version >/dev/null 2>&1; then COMPOSE=(docker compose); elif command -v docker-compose >/dev/null; then COMPOSE=(docker-compose); else echo "no docker compose: apt-get install docker-compose" >&2; exit 1; fi

step "base image $BASE"
if ! docker image inspect "$BASE" >/dev/null 2>&1; then
  if [ ! -x "$ROOTFS/usr/bin/redis-server" ]; then
    command -v debootstrap >/dev/null || { echo "debootstrap missing: apt-get install debootstrap" >&2; exit 1; }
    debootstrap --variant=minbase --include=ca-certificates,redis-server bookworm "$ROOTFS" "$MIRROR"
  fi
  NODE_BIN=$(readlink -f "$(command -v node)")
  NPM_DIR=$(dirname "$(dirname "$(readlink -f "$(command -v npm)")")")
  install -D -m 755 "$NODE_BIN" "$ROOTFS/usr/local/bin/node"
  rm -rf "$ROOTFS/usr/local/lib/node_modules/npm" && mkdir -p "$ROOTFS/usr/local/lib/node_modules"
  cp -a "$NPM_DIR" "$ROOTFS/usr/local/lib/node_modules/npm"
  ln -sf ../lib/node_modules/npm/bin/npm-cli.js "$ROOTFS/usr/local/bin/npm"
  ln -sf ../lib/node_modules/npm/bin/npx-cli.js "$ROOTFS/usr/local/bin/npx"
  rm -rf "$ROOTFS/var/cache/apt/archives/"*.deb "$ROOTFS/var/lib/apt/lists/"*
  # This machine's trust store, so npm inside the builds works behind the same TLS-inspecting proxy.
  cp "${NODE_EXTRA_CA_CERTS:-/etc/ssl/certs/ca-certificates.crt}" "$ROOTFS/etc/ssl/certs/scaleot-build-ca.crt"
  tar -C "$ROOTFS" -c . | docker import -c 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
    -c 'ENV NODE_EXTRA_CA_CERTS=/etc/ssl/certs/scaleot-build-ca.crt' -c 'CMD ["/bin/bash"]' - "$BASE"
fi
docker run --rm "$BASE" node -e 'console.log("base: node", process.version)'

step "images (BASE_IMAGE=$BASE)"
for image in coordinator worker-cpu; do
  "${BUILDER[@]}" --network host --build-arg "BASE_IMAGE=$BASE" -f "infra/docker/$image.Dockerfile" -t "scaleot/$image:e2e" . 2>&1 | tail -n 5
done
docker images --format '{{.Repository}}:{{.Tag}} {{.Size}}' | grep -E '^scaleot/(coordinator|worker-cpu):e2e|^scaleot/base'
docker run --rm scaleot/worker-cpu:e2e sh -c 'for c in scaleot scaleot-coordinator scaleot-worker; do command -v $c; done; scaleot-worker --help | head -n 1; scaleot --help | head -n 1'

step "compose up (Redis, coordinator, two workers)"
tmp=$(mktemp -d)
cleanup() {
  step "compose down"
  [ -n "${MAIN_COMPOSE:-}" ] && "${COMPOSE[@]}" -p "$PROJECT" --env-file "$tmp/.env" -f "$MAIN_COMPOSE" -f infra/e2e/docker-compose.e2e.yml down -v --remove-orphans >/dev/null 2>&1 || true
  rm -rf "$tmp" infra/.compose-e2e-v1.yml
  if [ -f infra/secrets/api-tokens.json.e2e ]; then mv infra/secrets/api-tokens.json.e2e infra/secrets/api-tokens.json; fi
  if [ -f infra/secrets/.e2e-created-tokens ]; then rm -f infra/secrets/api-tokens.json infra/secrets/.e2e-created-tokens; fi
  echo "e2e total: $(( $(date +%s) - started ))s"
}
trap cleanup EXIT
TOKEN=$(node -e 'console.log(require("crypto").randomBytes(32).toString("hex"))')
PORT=$(node -e 'const s=require("net").createServer().listen(0,"127.0.0.1",()=>{console.log(s.address().port);s.close()})')
printf 'SCALEOT_REDIS_PASSWORD=%s\nSCALEOT_API_PORT=%s\nSCALEOT_E2E_BASE=%s\n' "$(node -e 'console.log(require("crypto").randomBytes(24).toString("hex"))')" "$PORT" "$BASE" > "$tmp/.env"
mkdir -p infra/secrets
if [ -f infra/secrets/api-tokens.json ]; then cp infra/secrets/api-tokens.json infra/secrets/api-tokens.json.e2e; else touch infra/secrets/.e2e-created-tokens; fi
printf '{"tenant-e2e": "%s"}\n' "$TOKEN" > infra/secrets/api-tokens.json
MAIN_COMPOSE=infra/docker-compose.yml
if [ "${COMPOSE[0]}" = docker-compose ]; then
  # docker-compose v1 (Debian's) does not know the top-level `name:` (the project name is given by -p);
  # the copy stays in infra/ so the file's relative paths still resolve.
  MAIN_COMPOSE=infra/.compose-e2e-v1.yml
  grep -v '^name:' infra/docker-compose.yml > "$MAIN_COMPOSE"
fi
compose() { "${COMPOSE[@]}" -p "$PROJECT" --env-file "$tmp/.env" -f "$MAIN_COMPOSE" -f infra/e2e/docker-compose.e2e.yml "$@"; }
compose up -d redis coordinator
# Models and the built-in task data onto the shared volume (what an operator does once).
until compose exec -T coordinator node -e 'fetch("http://127.0.0.1:8080/readyz").then(r=>process.exit(r.ok?0:1),()=>process.exit(1))' 2>/dev/null; do sleep 2; done
compose exec -T coordinator sh -c 'mkdir -p /data/models && cp -r /app/models/sotu-gpt2-tiny /data/models/ && cp -r /app/data /data/data'
compose up -d worker-1 worker-2
compose ps

step "one data owner's request through the API"
node infra/e2e/client.mjs "http://127.0.0.1:$PORT" "$TOKEN"
compose exec -T coordinator node -e 'fetch("http://127.0.0.1:9090/metrics").then(r=>r.text()).then(t=>console.log(t.split("\n").filter(l=>l.startsWith("scaleot_queue_depth")).join("\n")))'
for w in worker-1 worker-2; do echo "$w: $(compose logs --no-color "$w" 2>/dev/null | grep -c '"job completed"') jobs completed"; done
step "passed"
