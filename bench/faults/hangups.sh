#!/usr/bin/env bash
# Wrapper: bench/faults/hangups.py with the binary resolved as in the other scripts.
set -euo pipefail
source "$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)/lib/common.sh"
python3 "$BENCH_DIR/faults/hangups.py" "$@"
