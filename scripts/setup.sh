#!/usr/bin/env bash
# Installs what `make run` and `make test` need on a fresh Debian machine, and
# nothing if it is already there: a Rust toolchain (cargo), util-linux (ipcs, ipcrm,
# setpriv, unshare), procps, and strace (the --explain tests compare the narration
# with what strace records). Safe to run again.
set -euo pipefail
need=()
command -v ipcs >/dev/null 2>&1 || need+=(util-linux)
command -v setpriv >/dev/null 2>&1 || need+=(util-linux)
command -v ps >/dev/null 2>&1 || need+=(procps)
command -v strace >/dev/null 2>&1 || need+=(strace)
if [ ${#need[@]} -gt 0 ]; then
  if [ "$(id -u)" -eq 0 ] && command -v apt-get >/dev/null 2>&1; then
    apt-get update -qq && apt-get install -y -qq "${need[@]}"
  else
    echo "setup: please install: ${need[*]}" >&2
    exit 1
  fi
fi
if ! command -v cargo >/dev/null 2>&1; then
  echo "setup: cargo not found; install Rust from https://rustup.rs (or apt-get install cargo)" >&2
  exit 1
fi
