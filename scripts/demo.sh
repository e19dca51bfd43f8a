#!/usr/bin/env bash
# `npm run demo`: a private etcd on loopback (data under .switchyard/) and the bot in shell
# mode with the example config and an ACL that allows the local user. Type `help`.
# Everything it starts is stopped when the shell exits.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-deps.sh

STATE="$PWD/.switchyard"
ETCD_PORT="${DEMO_ETCD_PORT:-23790}"
PEER_PORT="${DEMO_ETCD_PEER_PORT:-23800}"
DEMO_USER="${DEMO_USER:-ULOCALDEMO}"
mkdir -p "$STATE"

pids=()
docker_cleanup() { :; } # replaced below once a Docker engine is in use
cleanup() { docker_cleanup; for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; }
trap cleanup EXIT

port_busy() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
if port_busy "$ETCD_PORT"; then
  echo "port $ETCD_PORT is in use: set DEMO_ETCD_PORT to a free port" >&2
  exit 1
fi

etcd --name demo --data-dir "$STATE/etcd" \
  --listen-client-urls "http://127.0.0.1:$ETCD_PORT" --advertise-client-urls "http://127.0.0.1:$ETCD_PORT" \
  --listen-peer-urls "http://127.0.0.1:$PEER_PORT" --initial-advertise-peer-urls "http://127.0.0.1:$PEER_PORT" \
  --initial-cluster "demo=http://127.0.0.1:$PEER_PORT" --log-level error >"$STATE/etcd.log" 2>&1 &
pids+=($!)
for _ in $(seq 1 50); do
  ETCDCTL_API=3 etcdctl --endpoints "127.0.0.1:$ETCD_PORT" endpoint health >/dev/null 2>&1 && break
  sleep 0.2
done
ETCDCTL_API=3 etcdctl --endpoints "127.0.0.1:$ETCD_PORT" endpoint health >/dev/null 2>&1 \
  || { echo "etcd did not start; see $STATE/etcd.log" >&2; exit 1; }

# --- Docker, for `scale` -------------------------------------------------------------------
# The engine DOCKER_HOST or /var/run/docker.sock points at, else a private dockerd under
# $STATE/docker (needs root); either way switchyard/web:demo is imported offline. Without
# one the demo runs on, minus `scale`. At exit the demo's containers are scaled away through
# switchyard itself (drained, deregistered, stopped, removed) and a private engine stopped.
DOCKER_SECTION="# no Docker engine: scale is unavailable in this demo"
if DEMO_DOCKER_HOST="$(bash scripts/docker-demo-engine.sh start "$STATE")"; then
  export DOCKER_HOST="$DEMO_DOCKER_HOST" # the environment wins over the config: keep them one
  DOCKER_SECTION="docker:
  host: $DEMO_DOCKER_HOST
  owner: switchyard-demo   # label of the containers this demo manages
  stopGrace: 5s"
  docker_cleanup() {
    echo "scale web 0 --yes" | node bin/switchyard.js shell --config "$STATE/switchyard.yaml" \
      --user "$DEMO_USER" --channel dm --log "$STATE/switchyard.log" >/dev/null 2>&1 || true
    bash scripts/docker-demo-engine.sh stop "$STATE" >/dev/null 2>&1 || true
  }
else
  echo "no Docker engine (see above): the demo runs without scale" >&2
fi
# -------------------------------------------------------------------------------------------

# --- HAProxy, driven by the agent in the demo shell ------------------------------------------
# Master-worker HAProxy with its config, sockets and server-state file under $STATE/haproxy.
# It starts from a config holding only the admin socket; the agent inside the demo shell
# (haproxy: below, `shell --agent`) renders the real one — a frontend on 127.0.0.1:8080 for service web — and
# reloads through the master socket. Then `register web web1 127.0.0.1:9001` makes
# `curl 127.0.0.1:8080` reach whatever listens on 9001, with no reload (runtime API).
HAP="$STATE/haproxy"
HAPROXY_BIN="$(command -v haproxy || echo /usr/sbin/haproxy)"
mkdir -p "$HAP"
if port_busy 8080; then
  echo "port 8080 is in use: the demo's HAProxy serves service web there" >&2
  exit 1
fi
rm -f "$HAP/admin.sock" "$HAP/master.sock" # left by a demo that was killed
cat >"$HAP/haproxy.cfg" <<HAPCFG
# Bootstrap written by scripts/demo.sh; the switchyard agent replaces it at start-up.
global
    stats socket $HAP/admin.sock mode 600 level admin expose-fd listeners
    server-state-file $HAP/haproxy.cfg.state
defaults
    mode http
    timeout connect 5s
    timeout client 60s
    timeout server 60s
HAPCFG
"$HAPROXY_BIN" -W -S "$HAP/master.sock,mode,600" -f "$HAP/haproxy.cfg" >"$HAP/haproxy.log" 2>&1 &
pids+=($!)
for _ in $(seq 1 50); do [ -S "$HAP/admin.sock" ] && [ -S "$HAP/master.sock" ] && break; sleep 0.1; done
[ -S "$HAP/admin.sock" ] || { echo "HAProxy did not start; see $HAP/haproxy.log" >&2; exit 1; }
HAPROXY_SECTION="haproxy:
  config: $HAP/haproxy.cfg
  adminSocket: $HAP/admin.sock
  masterSocket: $HAP/master.sock
  binary: $HAPROXY_BIN
  agentId: demo"
# -------------------------------------------------------------------------------------------

cat >"$STATE/acl.yaml" <<ACL
# Demo ACL: the local user may run everything, everyone else nothing (default deny).
groups:
  local: [$DEMO_USER]
rules:
  - name: demo-local-user
    allow: ["*"]
    groups: [local]
ACL

cat >"$STATE/switchyard.yaml" <<CFG
# Written by scripts/demo.sh; see switchyard.example.yaml for every option.
etcd:
  endpoints: [http://127.0.0.1:$ETCD_PORT]
acl:
  path: $STATE/acl.yaml
services:
  web:
    image: switchyard/web:demo
    port: 80
    hostIp: 127.0.0.1
    mode: http
    listen: 127.0.0.1:8080
    maxReplicas: 10
$DOCKER_SECTION
$HAPROXY_SECTION
CFG

echo "etcd on 127.0.0.1:$ETCD_PORT (data in $STATE/etcd). You are $DEMO_USER. Logs and audit: $STATE/switchyard.log. Type 'help'; Ctrl-D quits." >&2
echo "HAProxy serves service web on http://127.0.0.1:8080 (config and sockets in $HAP): register web web1 127.0.0.1:9001, then curl it." >&2
node bin/switchyard.js shell --config "$STATE/switchyard.yaml" --user "$DEMO_USER" --channel dm --log "$STATE/switchyard.log" --agent
