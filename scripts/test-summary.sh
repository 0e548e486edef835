#!/usr/bin/env bash
# The last lines of `make test`: how many tests could not run here, and why. A test
# that cannot run (a missing tool, a missing permission) records itself in
# target/test-skips (crates/e2e/tests/support/skip.rs); under CI=true it fails instead.
set -u
dir=${SHM_TEST_SKIPS:-target/test-skips}
n=0
[ -d "$dir" ] && n=$(find "$dir" -type f | wc -l)
if [ "$n" -eq 0 ]; then
  echo "make test: every test ran (0 skipped)"
else
  echo "make test: $n test(s) SKIPPED (a tool or permission is missing; scripts/setup.sh installs the tools):"
  cat "$dir"/* | sed 's/^/  /'
fi
