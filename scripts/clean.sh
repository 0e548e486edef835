#!/usr/bin/env bash
# make clean [KEY=0x...] [FORCE=1]: remove our leftover segments and semaphore sets.
# Only objects that carry our magic (checked by `writer --remove`, which refuses
# anything foreign and anything still in use) are removed; others are listed. A
# finished stream still waiting for its reader is kept unless FORCE=1.
set -u
cd "$(dirname "$0")/.." || exit 1
cargo build -q --release --bin writer || exit 1
writer=target/release/writer
if [ $# -gt 0 ] && [ -n "$1" ]; then
  keys=$1
else
  # Every key of a segment or set owned by us (column 1 key, column 3 owner).
  keys=$( (ipcs -m; ipcs -s) | awk -v me="$(id -un)" '$1 ~ /^0x/ && $1 != "0x00000000" && $3 == me {print $1}' | sort -u)
fi
status=0
for k in $keys; do
  if [ "${FORCE:-0}" = 1 ]; then
    "$writer" --remove --force --key "$k" || status=1
  else
    "$writer" --remove --key "$k" || status=1
  fi
done
[ -z "$keys" ] && echo "make clean: no System V objects of yours to look at"
exit $status
