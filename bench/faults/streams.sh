#!/usr/bin/env bash
# 1,000 idle event streams and 1,000 slow clients. Env: STREAMS, SLOW_CLIENTS, TURNS_SECS,
# IDLE_SECS, SLOW_SECS, WRK_THREADS, WRK_CONNS, BENCH_OUT.
set -euo pipefail
source "$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)/lib/common.sh"
command -v wrk >/dev/null || { echo "streams: wrk not found (apt-get install wrk)" >&2; exit 2; }
python3 "$BENCH_DIR/faults/streams.py" "$@"
