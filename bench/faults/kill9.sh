#!/usr/bin/env bash
# kill -9 durability trials. Env: TRIALS (20), CONVS, CLIENTS, ESCALATE_PCT, SEED, BENCH_OUT.
set -euo pipefail
source "$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)/lib/common.sh"
python3 "$BENCH_DIR/faults/kill9.py" "$@"
