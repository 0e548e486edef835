#!/usr/bin/env bash
# Run after the tests: every test key starts with 0x7e; none may be left behind.
left=$( (ipcs -m; ipcs -s) | awk '$1 ~ /^0x7e/ {print}')
if [ -n "$left" ]; then
  echo "LEAK: the tests left System V objects behind:" >&2
  echo "$left" >&2
  exit 1
fi
echo "ipcs: no test objects left behind"
