#!/usr/bin/env bash
# Sign-in throttling under a password-guessing flood. Env: TRIES, ACCOUNTS, FLOODERS, CLIENTS,
# DRIVE_S, BENCH_OUT.
set -euo pipefail
source "$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)/lib/common.sh"
python3 "$BENCH_DIR/faults/logins.py" "$@"
