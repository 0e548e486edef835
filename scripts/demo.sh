#!/usr/bin/env bash
# make run: the whole story in one terminal, on a fresh key.
#   1. the handout exercise done right: a writer sends a text and exits before any
#      reader exists (--persist); the objects wait in the kernel (ipcs shows them);
#   2. a reader started later gets the whole text, byte for byte, and removes them;
#   3. a live pair moves 64 MiB of random bytes at once, checked with cmp.
set -euo pipefail
bin=$1
key=$2
work=$(mktemp -d)
cleanup() {
  "$bin/writer" --remove --force --key "$key" -q 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT

section() { printf '\n\033[1m== %s\033[0m\n' "$*"; }
show_ipcs() {
  local rows
  rows=$( (ipcs -m; ipcs -s) | awk -v k="$key" 'tolower($1) == tolower(k)')
  if [ -n "$rows" ]; then echo "$rows"; else echo "(nothing at key $key)"; fi
}

cat > "$work/demo.txt" <<'TEXT'
Shared memory is the fastest IPC: the bytes never pass through the kernel.
But two processes sharing memory need a protocol, or they tear, lose and repeat data.
This text went through a System V segment, guarded by System V semaphores.
TEXT

section "1. writer --persist: send the text and exit before any reader exists (key $key)"
"$bin/writer" --key "$key" --persist "$work/demo.txt"
section "ipcs: the segment and the semaphore set outlive the writer"
show_ipcs

section "2. reader: receives the text, and as the last user removes the objects"
"$bin/reader" --key "$key" > "$work/received.txt"
cat "$work/received.txt"
cmp "$work/demo.txt" "$work/received.txt"
echo "cmp: identical ($(wc -c < "$work/received.txt") bytes)"
section "ipcs after the reader"
show_ipcs

section "3. a live pair: 64 MiB of random bytes, reader started first"
head -c $((64 << 20)) /dev/urandom > "$work/random.bin"
"$bin/reader" --key "$key" > "$work/random.out" &
reader_pid=$!
"$bin/writer" --key "$key" "$work/random.bin"
wait "$reader_pid"
cmp "$work/random.bin" "$work/random.out"
echo "cmp: identical ($(wc -c < "$work/random.out") bytes)"
section "ipcs at the end"
show_ipcs
