#!/usr/bin/env bash
# Disk full: the database on a small tmpfs (needs root for mount). Env: DISKFULL_SIZE (8m),
# FREE_KB, CLIENTS, FAIL_TURNS, SEED, BENCH_OUT.
set -euo pipefail
source "$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)/lib/common.sh"
[ "$(id -u)" = 0 ] || { echo "diskfull: needs root (mount -t tmpfs)" >&2; exit 2; }
export DISKFULL_SIZE="${DISKFULL_SIZE:-8m}"
export DISKFULL_DIR="$WORK/tmpfs"
mkdir -p "$DISKFULL_DIR"
mount -t tmpfs -o "size=$DISKFULL_SIZE" tmpfs "$DISKFULL_DIR"
CLEANUP_EXTRA+=("umount -l '$DISKFULL_DIR'")
export LOG_DIR="$WORK"
rc=0
python3 "$BENCH_DIR/faults/diskfull.py" "$@" || rc=$?
if [ "$rc" != 0 ] && [ -f "$WORK/diskfull-server.log" ]; then
  echo "--- last server log lines ---"; sed 's/\x1b\[[0-9;]*m//g' "$WORK/diskfull-server.log" | grep -E "ERROR|WARN" | tail -5 | cut -c1-300
fi
exit "$rc"
