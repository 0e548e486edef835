#!/usr/bin/env bash
# Every key the tests and benchmarks use starts with 0x7e (shm_cli::keys: one range
# per suite); none may be left behind. `--before` notes what is already there (a
# crashed earlier run's leftovers: reported, never removed here), so that the check
# after the tests blames only what this run left.
set -u
cd "$(dirname "$0")/.." || exit 1
mkdir -p target
before=target/ipc-before.txt
list() { (ipcs -m; ipcs -s) | awk '$1 ~ /^0x7e/ {print $1, $2}' | sort; }
if [ "${1:-}" = "--before" ]; then
  list > "$before"
  if [ -s "$before" ]; then
    echo "check-clean: System V objects in the test ranges before the tests ran (not ours to remove; \`make clean\` removes ours):" >&2
    sed 's/^/  /' "$before" >&2
  fi
  exit 0
fi
[ -f "$before" ] || : > "$before"
left=$(list | comm -23 - "$before")
if [ -n "$left" ]; then
  echo "LEAK: the tests left System V objects behind (key, id):" >&2
  echo "$left" >&2
  exit 1
fi
echo "ipcs: no test objects left behind"
