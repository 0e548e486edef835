#!/usr/bin/env bash
# `make -C peers/c check`: a quick self-test of the C peer. A 1 MiB stream C -> C
# and, if the Rust binaries are built (target/debug), C -> Rust and Rust -> C; then
# a --persist text. The full interop matrix is `cargo test -p e2e --test interop`.
#
# Keys: four of the interop range (0x7e5xxxxx), claimed from the project's key
# allocator by c-claimkey, which runs this script with them in SR_KEYS and holds
# the claims until it ends. A claimed key was free when it was handed out and no
# one else gets it meanwhile, so whatever is at it afterwards is ours: the cleanup
# removes exactly that, and nothing at any other key.
set -euo pipefail
cd "$(dirname "$0")"
OUT=${OUT:-../../target/c}
RUST=${RUST:-../../target/debug}
if [ -z "${SR_KEYS:-}" ]; then
  exec "$OUT/c-claimkey" 4 bash "$0" "$@"
fi
read -r -a keys <<< "$SR_KEYS"
tmp=$(mktemp -d)
cleanup() {
  for k in "${keys[@]}"; do ipcrm -M "$k" -S "$k" 2>/dev/null || true; done
  rm -rf "$tmp"
}
trap cleanup EXIT
head -c $((1 << 20)) /dev/urandom > "$tmp/in"
n=0
pair() { # WRITER READER LABEL
  local key=${keys[$n]}; n=$((n + 1))
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
key=${keys[3]}
printf 'the handout exercise, done right\n' | "$OUT/c-writer" --key "$key" --persist -q
ipcs -m -s | grep -q "^$key " || { echo "check: --persist left nothing" >&2; exit 1; }
got=$("$OUT/c-reader" --key "$key" -q)
[ "$got" = "the handout exercise, done right" ] || { echo "check: persist: got '$got'" >&2; exit 1; }
if ipcs -m -s | grep -q "^$key "; then echo "check: persist: objects left at $key" >&2; exit 1; fi
echo "check: --persist: the text waited in the kernel for the reader, who removed it"
