#!/usr/bin/env bash
# Builds the production image without any image registry.
#
#   scripts/build-image.sh [--tag NAME]   # default NAME: switchyard:local
#   scripts/build-image.sh --rootfs-only  # only make (or find) the cached Debian root filesystem
#
# 1. A Debian root filesystem: `debootstrap --variant=minbase` from the mirror apt uses
#    (override with DEBIAN_MIRROR), as root, once: the tarball is cached under
#    $SWITCHYARD_IMAGE_CACHE (default .switchyard/image-cache/, git-ignored).
# 2. The base image switchyard-base:local: that root filesystem plus this host's Node.js
#    binary (NODE_BIN, default `node` on PATH), through `docker import`. Re-imported only
#    when the tarball or the Node.js version changed.
# 3. A staging directory: dist/ compiled by scripts/build-dist.mjs, bin/, package.json, the
#    example files, and node_modules/ from `npm ci --omit=dev` (without tsx); the npm cache is
#    preferred, so after the repository's own `npm ci` this needs no network.
# 4. `docker build` of Dockerfile on that directory (the classic builder: BuildKit would fetch
#    its Dockerfile frontend from a registry).
#
# The engine is $DOCKER_HOST (or the local socket). Without one, start a private engine:
#   export DOCKER_HOST=$(scripts/docker-demo-engine.sh start .switchyard)
# test/image.test.ts builds the image on the test engine and runs it (check, serve → /healthz,
# SIGTERM → exit 0).
set -euo pipefail

ROOT="$(cd "$(dirname "$0")/.." && pwd)"
TAG=switchyard:local
BASE_TAG=switchyard-base:local
SUITE=bookworm
ROOTFS_ONLY=false

usage() { echo "usage: $0 [--tag NAME] | --rootfs-only" >&2; exit 2; }
while [ $# -gt 0 ]; do
  case "$1" in
    --tag) [ $# -ge 2 ] || usage; TAG="$2"; shift 2 ;;
    --tag=*) TAG="${1#--tag=}"; shift ;;
    --rootfs-only) ROOTFS_ONLY=true; shift ;;
    *) usage ;;
  esac
done

log() { echo "build-image: [${SECONDS}s] $*" >&2; }
die() { log "$*"; exit 1; }

CACHE="${SWITCHYARD_IMAGE_CACHE:-$ROOT/.switchyard/image-cache}"
ARCH="$(dpkg --print-architecture 2>/dev/null || true)"
[ -n "$ARCH" ] || die "dpkg is missing: the base is made with debootstrap on a Debian or Ubuntu host"
# Bump RECIPE when make_rootfs changes, so caches made the old way are not reused.
RECIPE=1
ROOTFS_TAR="$CACHE/debian-$SUITE-minbase-$ARCH-r$RECIPE.tar"

WORK=""
cleanup() {
  [ -n "$WORK" ] || return 0
  # debootstrap mounts proc and sys inside the tree; a failed run can leave them mounted,
  # and removing through a mount would reach the host's files.
  awk -v d="$WORK" '$5 == d || index($5, d "/") == 1 { print $5 }' /proc/self/mountinfo | sort -r |
    while read -r m; do umount -l "$m" 2>/dev/null || true; done
  rm -rf --one-file-system "$WORK"
}
trap cleanup EXIT

# The mirror of the host's first `deb` source for $SUITE (deb822 .sources, then one-line lists).
apt_mirror() {
  local uri=""
  if compgen -G '/etc/apt/sources.list.d/*.sources' >/dev/null; then
    uri="$(awk -v s="$SUITE" 'BEGIN { RS = ""; FS = "\n" }
      { u = ""; deb = 0; hit = 0
        for (i = 1; i <= NF; i++) {
          n = split($i, w, /[ \t]+/)
          if (w[1] == "Types:") for (j = 2; j <= n; j++) if (w[j] == "deb") deb = 1
          if (w[1] == "URIs:") u = w[2]
          if (w[1] == "Suites:") for (j = 2; j <= n; j++) if (w[j] == s) hit = 1
        }
        if (deb && hit && u != "") { print u; exit } }' /etc/apt/sources.list.d/*.sources)"
  fi
  if [ -z "$uri" ]; then
    uri="$(cat /etc/apt/sources.list /etc/apt/sources.list.d/*.list 2>/dev/null |
      awk -v s="$SUITE" '$1 == "deb" { i = 2; if ($i ~ /^\[/) { while ($i !~ /\]$/) i++; i++ } if ($(i + 1) == s) { print $i; exit } }')"
  fi
  echo "${uri:-http://deb.debian.org/debian}"
}

make_rootfs() {
  [ -f "$ROOTFS_TAR" ] && return
  [ "$(id -u)" -eq 0 ] || die "no cached root filesystem at $ROOTFS_TAR, and debootstrap needs root: run this once as root"
  local debootstrap
  debootstrap="$(command -v debootstrap || { [ -x /usr/sbin/debootstrap ] && echo /usr/sbin/debootstrap; } || true)"
  [ -n "$debootstrap" ] || die 'debootstrap is missing: install it with "apt-get install -y debootstrap"'
  mkdir -p "$CACHE"
  # Two builds at once (two checkouts sharing a cache) bootstrap once.
  exec 9>"$CACHE/.lock"
  flock 9
  if [ -f "$ROOTFS_TAR" ]; then exec 9>&-; return; fi
  local mirror="${DEBIAN_MIRROR:-$(apt_mirror)}"
  WORK="$(mktemp -d "$CACHE/.rootfs.XXXXXX")"
  log "debootstrap --variant=minbase $SUITE from $mirror (once; cached in $ROOTFS_TAR)"
  # dpkg syncs every file it unpacks; a throw-away tree does not need that (Docker's own
  # Debian images do the same). Removed again below: the image never runs dpkg.
  mkdir -p "$WORK/rootfs/etc/dpkg/dpkg.cfg.d"
  echo force-unsafe-io >"$WORK/rootfs/etc/dpkg/dpkg.cfg.d/switchyard-build-speedup"
  if ! "$debootstrap" --variant=minbase "$SUITE" "$WORK/rootfs" "$mirror" >"$WORK/debootstrap.log" 2>&1; then
    tail -n 20 "$WORK/debootstrap.log" >&2
    die "debootstrap failed (DEBIAN_MIRROR overrides the mirror)"
  fi
  # Downloaded packages, apt lists, documentation and translations: nothing reads them. The
  # copyright notices stay.
  (cd "$WORK/rootfs" && rm -rf etc/dpkg/dpkg.cfg.d/switchyard-build-speedup \
    var/cache/apt/archives/*.deb var/lib/apt/lists/* var/log/bootstrap.log \
    usr/share/man usr/share/info usr/share/locale &&
    find usr/share/doc -type f ! -name copyright -delete)
  tar --numeric-owner -C "$WORK/rootfs" -cf "$WORK/rootfs.tar" .
  mv "$WORK/rootfs.tar" "$ROOTFS_TAR"
  cleanup
  WORK=""
  exec 9>&-
}

make_rootfs
if $ROOTFS_ONLY; then echo "$ROOTFS_TAR"; exit 0; fi

DOCKER="$(command -v docker || true)"
[ -n "$DOCKER" ] || die 'the docker client is missing: install it with "apt-get install -y docker.io"'
"$DOCKER" version --format '{{.Server.Version}}' >/dev/null 2>&1 ||
  die "no Docker engine answers at ${DOCKER_HOST:-the local socket}; start one with: export DOCKER_HOST=\$(scripts/docker-demo-engine.sh start .switchyard)"
NODE_BIN="$(readlink -f "${NODE_BIN:-$(command -v node)}")"
[ -x "$NODE_BIN" ] || die "no Node.js binary: set NODE_BIN"
NODE_VERSION="$("$NODE_BIN" --version)"

WORK="$(mktemp -d)"

# --- base image ------------------------------------------------------------------------
BASE_KEY="$(basename "$ROOTFS_TAR") $(stat -c '%s %Y' "$ROOTFS_TAR") node $NODE_VERSION"
if [ "$("$DOCKER" image inspect --format '{{index .Config.Labels "switchyard.base"}}' "$BASE_TAG" 2>/dev/null || true)" != "$BASE_KEY" ]; then
  log "importing $BASE_TAG (Debian $SUITE minbase + Node.js $NODE_VERSION)"
  cp "$ROOTFS_TAR" "$WORK/base.tar"
  mkdir -p "$WORK/node/usr/local/bin"
  cp "$NODE_BIN" "$WORK/node/usr/local/bin/node"
  tar --numeric-owner --owner=0 --group=0 -C "$WORK/node" -rf "$WORK/base.tar" ./usr/local/bin/node
  "$DOCKER" import \
    --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
    --change "LABEL switchyard.base=\"$BASE_KEY\"" \
    "$WORK/base.tar" "$BASE_TAG" >/dev/null
  rm -f "$WORK/base.tar"
  # A Node.js built for a newer C library than the base has fails here, not in production.
  "$DOCKER" run --rm --network none --entrypoint node "$BASE_TAG" --version >/dev/null ||
    die "Node.js $NODE_VERSION from $NODE_BIN does not run on Debian $SUITE; set NODE_BIN to one that does"
fi

# --- build context ---------------------------------------------------------------------
APP="$WORK/context/app"
mkdir -p "$APP/bin"
cp "$ROOT/package.json" "$ROOT/package-lock.json" "$ROOT/switchyard.example.yaml" "$ROOT/acl.yaml" "$APP/"
cp "$ROOT"/bin/*.js "$APP/bin/"
log "compiling dist/ and installing the production dependencies"
# Side by side: one waits on the disk and the network, the other on the CPU.
(
  cd "$APP"
  # tsx only runs the TypeScript sources in a clone; the image runs dist/.
  npm pkg delete dependencies.tsx
  npm ci --omit=dev --ignore-scripts --prefer-offline --no-audit --no-fund
) >"$WORK/npm.log" 2>&1 &
NPM_PID=$!
if ! node "$ROOT/scripts/build-dist.mjs" --out-dir "$APP/dist" >&2; then
  wait "$NPM_PID" || true
  die "compiling failed (tsc's errors are above)"
fi
if ! wait "$NPM_PID"; then
  tail -n 20 "$WORK/npm.log" >&2
  die "npm ci --omit=dev failed"
fi
cp "$ROOT/Dockerfile" "$ROOT/.dockerignore" "$WORK/context/"

log "building $TAG"
if ! DOCKER_BUILDKIT=0 "$DOCKER" build --network none --build-arg "BASE=$BASE_TAG" --tag "$TAG" "$WORK/context" >"$WORK/build.log" 2>&1; then
  tail -n 30 "$WORK/build.log" >&2
  die "docker build failed"
fi
log "built $TAG"
echo "$TAG"
