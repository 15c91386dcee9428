#!/usr/bin/env bash
# SIGTERM with 50 open event streams and turns in flight. Env: STREAMS, CLIENTS, DRIVE_S,
# TERM_TIMEOUT_S, ESCALATE_PCT, SEED, BENCH_OUT.
set -euo pipefail
source "$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)/lib/common.sh"
python3 "$BENCH_DIR/faults/sigterm.py" "$@"
