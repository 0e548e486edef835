#!/usr/bin/env bash
# `make -C peers/c check`: a quick self-test of the C peer. A 1 MiB stream C -> C
# and, if the Rust binaries are built (target/debug), C -> Rust and Rust -> C; then
# a --persist text. Keys 0x7e5fff01..; everything at them is removed on the way out.
# The full interop matrix is `cargo test -p e2e --test interop`.
set -euo pipefail
cd "$(dirname "$0")"
OUT=${OUT:-../../target/c}
RUST=${RUST:-../../target/debug}
tmp=$(mktemp -d)
keys=()
cleanup() {
  for k in "${keys[@]}"; do ipcrm -M "$k" -S "$k" 2>/dev/null || true; done
  rm -rf "$tmp"
}
trap cleanup EXIT
head -c $((1 << 20)) /dev/urandom > "$tmp/in"
n=0
pair() { # WRITER READER LABEL
  n=$((n + 1)); local key; key=$(printf '0x7e5fff%02x' "$n"); keys+=("$key")
  "$2" --key "$key" -q > "$tmp/out" & local r=$!
  "$1" --key "$key" -q "$tmp/in"
  wait "$r"
  cmp -s "$tmp/in" "$tmp/out" || { echo "check: $3: output differs" >&2; exit 1; }
  if ipcs -m -s | grep -q "^$key "; then echo "check: $3: objects left at $key" >&2; exit 1; fi
  echo "check: $3: 1 MiB byte-exact, nothing left"
}
pair "$OUT/c-writer" "$OUT/c-reader" "C -> C"
if [ -x "$RUST/writer" ] && [ -x "$RUST/reader" ]; then
  pair "$OUT/c-writer" "$RUST/reader" "C -> Rust"
  pair "$RUST/writer" "$OUT/c-reader" "Rust -> C"
else
  echo "check: Rust binaries not built in $RUST (cargo build --workspace --bins): C only"
fi
key=0x7e5fff80; keys+=("$key")
printf 'the handout exercise, done right\n' | "$OUT/c-writer" --key "$key" --persist -q
ipcs -m -s | grep -q "^$key " || { echo "check: --persist left nothing" >&2; exit 1; }
got=$("$OUT/c-reader" --key "$key" -q)
[ "$got" = "the handout exercise, done right" ] || { echo "check: persist: got '$got'" >&2; exit 1; }
echo "check: --persist: the text waited in the kernel for the reader"
