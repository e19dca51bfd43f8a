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
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; }
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
CFG

echo "etcd on 127.0.0.1:$ETCD_PORT (data in $STATE/etcd). You are $DEMO_USER. Logs and audit: $STATE/switchyard.log. Type 'help'; Ctrl-D quits." >&2
node bin/switchyard.js shell --config "$STATE/switchyard.yaml" --user "$DEMO_USER" --channel dm --log "$STATE/switchyard.log"
