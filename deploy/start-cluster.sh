#!/usr/bin/env bash
# Starts the 3-node JetStream cluster of deploy/cluster/n{1,2,3}.conf on loopback
# (clients: nats://127.0.0.1:4222,nats://127.0.0.1:4223,nats://127.0.0.1:4224) and waits until
# JetStream has a meta leader. Stores under ./data/cluster/ (relative to the current directory).
# Stop with: deploy/start-cluster.sh stop
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
bin="${NATS_SERVER_BIN:-nats-server}"
piddir="./data/cluster"
mkdir -p "$piddir"

if [[ "${1:-}" == "stop" ]]; then
  for i in 1 2 3; do
    if [[ -f "$piddir/n$i.pid" ]]; then kill "$(cat "$piddir/n$i.pid")" 2>/dev/null || true; rm -f "$piddir/n$i.pid"; fi
  done
  exit 0
fi

command -v "$bin" >/dev/null || { echo "nats-server not found: apt-get install -y nats-server, or set NATS_SERVER_BIN" >&2; exit 1; }
for i in 1 2 3; do
  "$bin" -c "$here/cluster/n$i.conf" >"$piddir/n$i.log" 2>&1 &
  echo $! >"$piddir/n$i.pid"
done

# JetStream is usable once /jsz reports a meta leader on every node.
for _ in $(seq 1 150); do
  ready=0
  for port in 8222 8223 8224; do
    if curl -fs "http://127.0.0.1:$port/jsz" 2>/dev/null | grep -q '"leader"'; then ready=$((ready + 1)); fi
  done
  if [[ $ready -eq 3 ]]; then
    echo "cluster ready: nats://127.0.0.1:4222,nats://127.0.0.1:4223,nats://127.0.0.1:4224"
    exit 0
  fi
  sleep 0.2
done
echo "cluster did not elect a JetStream meta leader in 30 s; logs in $piddir/n*.log" >&2
exit 1
