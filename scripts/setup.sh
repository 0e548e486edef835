#!/usr/bin/env bash
# Installs what `make run` and `make test` need on a fresh Debian machine, and
# nothing if it is already there: util-linux (ipcs, ipcrm, setpriv, unshare, script),
# procps, strace (the --explain tests compare the narration with what strace
# records), tmux (the inspector's terminal tests drive a real 80x24 pane), a C
# compiler and make (the C reference peer in peers/c), and pv (a row of
# `make bench`). Safe to run again. A tool still missing afterwards is not fatal here:
# the tests that need it say so (and fail under CI=true).
set -euo pipefail
need=()
for tool in ipcs ipcrm setpriv unshare script; do
  command -v "$tool" >/dev/null 2>&1 || need+=(util-linux)
done
command -v ps >/dev/null 2>&1 || need+=(procps)
command -v strace >/dev/null 2>&1 || need+=(strace)
command -v tmux >/dev/null 2>&1 || need+=(tmux)
command -v cc >/dev/null 2>&1 || need+=(gcc)
command -v make >/dev/null 2>&1 || need+=(make)
command -v pv >/dev/null 2>&1 || need+=(pv)
if [ ${#need[@]} -gt 0 ]; then
  mapfile -t need < <(printf '%s\n' "${need[@]}" | sort -u)
  if [ "$(id -u)" -eq 0 ] && command -v apt-get >/dev/null 2>&1; then
    apt-get update -qq && apt-get install -y -qq "${need[@]}"
  else
    echo "setup: please install: ${need[*]}" >&2
    exit 1
  fi
fi
for tool in ipcs ipcrm setpriv unshare script strace tmux cc pv; do
  command -v "$tool" >/dev/null 2>&1 ||
    echo "setup: $tool is still not on PATH; the tests that need it will be skipped (CI=true: they fail)" >&2
done
if ! command -v cargo >/dev/null 2>&1; then
  echo "setup: cargo not found; install Rust from https://rustup.rs (or apt-get install cargo)" >&2
  exit 1
fi
