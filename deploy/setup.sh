#!/usr/bin/env bash
# Installs what Kiln needs from Debian's packages when it is missing: nats-server (every engine,
# test and `kiln up`), and with --browser also Chromium (the gateway page's browser test).
set -euo pipefail
missing=()
command -v nats-server >/dev/null 2>&1 || [ -n "${NATS_SERVER_BIN:-}" ] || missing+=(nats-server)
if [ "${1:-}" = "--browser" ] && [ ! -x /usr/bin/chromium ]; then missing+=(chromium); fi
[ ${#missing[@]} -eq 0 ] && exit 0
sudo=""
[ "$(id -u)" -eq 0 ] || sudo="sudo"
echo "installing with apt-get: ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get update -qq
$sudo apt-get install -y -qq "${missing[@]}" >/dev/null
