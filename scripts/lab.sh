#!/usr/bin/env bash
# make lab: the three-pane lab in tmux, on a fresh key.
#
#   +----------------------------+-------------------+
#   | writer --lines (type here) | shm-inspect       |
#   +----------------------------+ --watch           |
#   | reader (they arrive here)  | (compact, live)   |
#   +----------------------------+-------------------+
#
# Both programs run in slow motion (--delay: the writer publishes a line every
# 0.3 s, the reader takes one every 0.6 s) on a ring of 8 slots, so that pasting a
# dozen lines fills it, the writer blocks on FREE, and the ring drains after; every pane's shell stays when its program ends, with the
# command in its history (Up, Enter runs it again). A second window holds the
# exercises (docs/lab.md). When the lab session ends (or you detach and run
# `make lab-clean KEY=...`), whatever is left at the key is removed.
#
# Environment (for the tests and the curious):
#   LAB_KEY        the key (default: a fresh one, 0x1a + 6 hex digits)
#   LAB_SOCKET     run on `tmux -L LAB_SOCKET` instead of the default server
#   LAB_ATTACH=0   build the session but do not attach (print its name)
set -euo pipefail
bin=$(cd "${1:?usage: lab.sh BIN_DIR}" && pwd)
root=$(cd "$(dirname "$0")/.." && pwd)
key=${LAB_KEY:-0x1a$(printf '%06x' $(( ($$ ^ $(date +%s)) & 0xffffff )))}
session="shm-lab-${key#0x}"
tmux_cmd=(tmux)
if [ -n "${LAB_SOCKET:-}" ]; then
  tmux_cmd=(tmux -L "$LAB_SOCKET" -f /dev/null)
  unset TMUX
fi
t() { "${tmux_cmd[@]}" "$@"; }

if ! command -v tmux >/dev/null 2>&1; then
  echo "lab: tmux is needed: run \`make setup\` (or apt-get install tmux)" >&2
  exit 1
fi
if [ "${LAB_ATTACH:-1}" != 0 ] && [ -z "${TMUX:-}" ] && ! [ -t 1 ]; then
  echo "lab: run \`make lab\` from a terminal (it opens tmux there)" >&2
  exit 1
fi

# Each pane runs an interactive bash whose rc file prints a banner, puts the
# pane's command in the shell's history and runs it: when it ends the shell stays,
# the output stays readable, and Up + Enter runs it again.
rcdir=$(mktemp -d "${TMPDIR:-/tmp}/shm-lab.XXXXXX")
pane_rc() {
  local name=$1 title=$2 cmd=$3
  cat > "$rcdir/$name.rc" <<SH
export PATH="$bin:\$PATH" KEY=$key
sleep 0.2  # the window is still being split; print after it settled
PS1='$name\$ '
printf '\033[1m%s\033[0m (key %s)\n' "$title" "$key"
history -s "$cmd"
rm -f "$rcdir/$name.rc"; rmdir "$rcdir" 2>/dev/null || true  # read once: not needed again
printf '%s%s\n' "\$PS1" "$cmd"
$cmd
SH
  echo "bash --rcfile $rcdir/$name.rc -i"
}

writer_cmd="writer --lines --key $key --slots 8 --delay 300"
reader_cmd="reader --key $key --delay 600"
inspect_cmd="shm-inspect --key $key --watch 0.25"

t new-session -d -s "$session" -x 80 -y 24 -n lab \
  "$(pane_rc writer 'writer: type lines; Ctrl-D ends the stream' "$writer_cmd")"
writer_pane=$(t display-message -p -t "$session" '#{pane_id}')
inspect_pane=$(t split-window -h -l 40 -t "$writer_pane" -P -F '#{pane_id}' \
  "$(pane_rc inspect 'shm-inspect: q quits' "$inspect_cmd")")
reader_pane=$(t split-window -v -t "$writer_pane" -P -F '#{pane_id}' \
  "$(pane_rc reader 'reader: what the writer sent' "$reader_cmd")")
t new-window -d -t "$session" -n exercises "less -R '$root/docs/lab.md'"
t select-pane -t "$writer_pane"
# When the lab session closes, nothing of it stays in the kernel.
t set-hook -t "$session" session-closed \
  "run-shell '$bin/writer --remove --force --key $key -q || true'"

echo "lab: tmux session $session, key $key (panes $writer_pane $reader_pane $inspect_pane)"
echo "lab: Ctrl-b n shows the exercises; Ctrl-b d detaches; \`make lab-clean KEY=$key\` removes the objects"
if [ "${LAB_ATTACH:-1}" = 0 ]; then
  exit 0
fi
if [ -n "${TMUX:-}" ]; then
  exec "${tmux_cmd[@]}" switch-client -t "$session"
fi
status=0
t attach -t "$session" || status=$?
if ! t has-session -t "$session" 2>/dev/null; then
  "$bin/writer" --remove --force --key "$key" -q || true
fi
exit "$status"
