#!/usr/bin/env bash
# A Docker engine and the demo image for `npm run demo`, with no registry and no system
# dockerd needed.
#
#   scripts/docker-demo-engine.sh start  STATE_DIR   # prints the DOCKER_HOST to use on stdout
#   scripts/docker-demo-engine.sh stop   STATE_DIR   # stops the engine only if `start` started it
#   scripts/docker-demo-engine.sh status STATE_DIR
#
# start uses, in order: $DOCKER_HOST, /var/run/docker.sock, an engine this script started
# earlier under STATE_DIR; only when none answers does it start dockerd (as root) on a
# private socket under STATE_DIR/docker. Then it imports switchyard/web:demo if absent: the
# static busybox in an empty rootfs, serving a page that names the container that answered.
#
# The private engine gets its own bridge and --iptables=false: published ports still work on
# 127.0.0.1 through Docker's userland proxy, and it cannot collide with a system dockerd
# (docker0, its iptables chains) or with the private engines the tests start.
set -euo pipefail

IMAGE="${DEMO_IMAGE:-switchyard/web:demo}"
BRIDGE="${DEMO_DOCKER_BRIDGE:-sydemo0}"
DOCKERD_MISSING='dockerd not found: install it with "apt-get install -y docker.io busybox-static"'

usage() { echo "usage: $0 start|stop|status STATE_DIR" >&2; exit 2; }
[ $# -eq 2 ] || usage
CMD="$1"
STATE="$(mkdir -p "$2" && cd "$2" && pwd)/docker"
SOCK="$STATE/docker.sock"
PIDFILE="$STATE/docker.pid"
MARK="$STATE/started-by-demo"

WORK=""
trap '[ -z "$WORK" ] || rm -rf "$WORK"' EXIT

log() { echo "docker-demo-engine: $*" >&2; }
find_bin() { command -v "$1" 2>/dev/null || { [ -x "/usr/sbin/$1" ] && echo "/usr/sbin/$1"; } || true; }

DOCKER="$(find_bin docker)"
[ -n "$DOCKER" ] || { log "the docker client is missing: install it with \"apt-get install -y docker.io\""; exit 1; }

answers() { timeout 5 "$DOCKER" -H "$1" version --format '{{.Server.Version}}' >/dev/null 2>&1; }

our_pid() {
  # The PID in our pidfile, only while it is still our dockerd (PIDs get reused).
  [ -f "$PIDFILE" ] || return 1
  local pid; pid="$(cat "$PIDFILE")"
  [ -n "$pid" ] && grep -qa -- "$STATE" "/proc/$pid/cmdline" 2>/dev/null && echo "$pid"
}

free_subnet() {
  local used; used="$(ip -4 -o addr show; ip -4 route show table all)"
  for third in $(seq 231 254); do
    grep -q "10\.231\.$third\." <<<"$used" || { echo "10.231.$third"; return; }
  done
  log "no free 10.231.x.0/24 subnet for the demo bridge"; exit 1
}

ensure_bridge() {
  ip link show "$BRIDGE" >/dev/null 2>&1 && return
  local net; net="$(free_subnet)"
  ip link add name "$BRIDGE" type bridge
  ip addr add "$net.1/24" dev "$BRIDGE"
  ip link set "$BRIDGE" up
}

start_engine() {
  local dockerd; dockerd="$(find_bin dockerd)"
  [ -n "$dockerd" ] || { log "$DOCKERD_MISSING"; exit 1; }
  [ "$(id -u)" -eq 0 ] || { log "no Docker engine answers and starting one needs root: run as root or set DOCKER_HOST"; exit 1; }
  command -v ip >/dev/null || { log 'the "ip" command is missing: apt-get install -y iproute2'; exit 1; }
  mkdir -p "$STATE"
  ensure_bridge
  # Keeps the trust key out of /etc/docker.
  printf '{"deprecated-key-path":"%s/key.json"}\n' "$STATE" >"$STATE/daemon.json"
  setsid "$dockerd" \
    --config-file="$STATE/daemon.json" \
    --host="unix://$SOCK" \
    --data-root="$STATE/data" \
    --exec-root="$STATE/exec" \
    --pidfile="$PIDFILE" \
    --bridge="$BRIDGE" \
    --iptables=false \
    --ip-forward=false \
    --userland-proxy=true \
    --log-level=warn \
    </dev/null >>"$STATE/dockerd.log" 2>&1 &
  local child=$!
  touch "$MARK"
  for _ in $(seq 1 150); do
    answers "unix://$SOCK" && { log "started dockerd (pid $(our_pid)) on unix://$SOCK"; return; }
    kill -0 "$child" 2>/dev/null || our_pid >/dev/null || break
    sleep 0.2
  done
  log "dockerd did not start; last lines of $STATE/dockerd.log:"
  tail -n 15 "$STATE/dockerd.log" >&2
  exit 1
}

ensure_image() {
  local host="$1"
  "$DOCKER" -H "$host" image inspect "$IMAGE" >/dev/null 2>&1 && return
  local busybox=/bin/busybox
  [ -x "$busybox" ] || { log 'busybox is missing: apt-get install -y busybox-static'; exit 1; }
  # A dynamically linked busybox cannot run in an empty rootfs.
  if ldd "$busybox" >/dev/null 2>&1; then log "$busybox is not static: apt-get install -y busybox-static"; exit 1; fi
  WORK="$(mktemp -d)"
  local work="$WORK"
  mkdir -p "$work/rootfs/bin" "$work/rootfs/www" "$work/rootfs/tmp" "$work/rootfs/etc"
  cp "$busybox" "$work/rootfs/bin/busybox"
  for a in sh httpd wget hostname cat echo sleep ls; do ln -s busybox "$work/rootfs/bin/$a"; done
  echo 'root:x:0:0:root:/:/bin/sh' >"$work/rootfs/etc/passwd"
  echo 'switchyard demo web' >"$work/rootfs/www/index.html"
  # sh stays PID 1 with a TERM trap so `docker stop` (scale down) ends at once instead of
  # waiting out the grace period: busybox httpd as PID 1 would ignore SIGTERM.
  local script='echo "switchyard demo web: served by container $HOSTNAME" >/www/index.html; trap "exit 0" TERM INT; /bin/busybox httpd -f -p 80 -h /www & wait'
  tar --numeric-owner --owner=0 --group=0 -C "$work/rootfs" -c . |
    "$DOCKER" -H "$host" import \
      --change "CMD [\"/bin/sh\",\"-c\",$(printf '%s' "$script" | sed 's/\\/\\\\/g; s/"/\\"/g; s/^/"/; s/$/"/')]" \
      --change 'EXPOSE 80' \
      - "$IMAGE" >/dev/null
  log "imported $IMAGE (busybox httpd, no registry needed)"
}

stop_engine() {
  local pid
  if ! pid="$(our_pid)" || [ ! -f "$MARK" ]; then
    log "no demo-started dockerd under $STATE: nothing to stop"
  else
    # Only our private engine holds these containers; removing them first keeps shutdown
    # from waiting out each one's stop timeout.
    local ids; ids="$("$DOCKER" -H "unix://$SOCK" ps -aq 2>/dev/null || true)"
    [ -z "$ids" ] || "$DOCKER" -H "unix://$SOCK" rm -f $ids >/dev/null 2>&1 || true
    kill -TERM "$pid"
    for _ in $(seq 1 150); do our_pid >/dev/null || break; sleep 0.1; done
    if our_pid >/dev/null; then
      log "dockerd $pid did not stop in 15 s; sending SIGKILL"
      kill -KILL "$pid"; sleep 0.5
      # Its containerd would outlive a SIGKILLed parent.
      local cpid; cpid="$(cat "$STATE/exec/containerd/containerd.pid" 2>/dev/null || true)"
      if [ -n "$cpid" ] && grep -qa -- "$STATE" "/proc/$cpid/cmdline" 2>/dev/null; then kill -KILL "$cpid"; fi
    fi
    log "stopped dockerd (pid $pid)"
  fi
  # Leave nothing mounted under the state dir (a killed engine can leave overlays and netns).
  awk -v d="$STATE" '$5 == d || index($5, d "/") == 1 { print $5 }' /proc/self/mountinfo | sort -r |
    while read -r m; do umount -l "$m" 2>/dev/null || true; done
  if [ -f "$MARK" ]; then
    ip link del "$BRIDGE" 2>/dev/null || true
    rm -rf "$STATE/exec" "$MARK"
  fi
}

case "$CMD" in
  start)
    host=""
    if [ -n "${DOCKER_HOST:-}" ] && answers "$DOCKER_HOST"; then host="$DOCKER_HOST"
    elif answers unix:///var/run/docker.sock; then host=unix:///var/run/docker.sock
    elif answers "unix://$SOCK"; then host="unix://$SOCK"
    else start_engine; host="unix://$SOCK"
    fi
    ensure_image "$host"
    echo "$host"
    ;;
  stop) stop_engine ;;
  status)
    if pid="$(our_pid)"; then echo "demo dockerd running (pid $pid) on unix://$SOCK"; else echo "no demo dockerd under $STATE"; fi
    ;;
  *) usage ;;
esac
