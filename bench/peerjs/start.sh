#!/usr/bin/env bash
# Run the pinned PeerJS server on 127.0.0.1:PORT in the foreground (see server.mjs for the
# settings and their environment overrides). `exec`, so the pid of this script is the pid of the
# node process: bench/compare hands that pid to `duet loadtest --server-pid` for /proc CPU and RSS.
#   bench/peerjs/start.sh PORT
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
port="${1:?usage: start.sh PORT}"
if [[ ! -d "$here/node_modules/peer" ]]; then
  echo "bench/peerjs: run 'npm ci' in $here first" >&2
  exit 1
fi
exec node "$here/server.mjs" "$port"
