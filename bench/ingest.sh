#!/usr/bin/env bash
# Ingest benchmark: /healthz, routine turns, escalating mix with scripted agents, p99 at a
# fixed rate. Options: --json (JSON on stdout), --out FILE. Durations via env (README.md).
set -euo pipefail
BENCH_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
source "$BENCH_DIR/lib/common.sh"
python3 "$BENCH_DIR/ingest.py" "$@"
