#!/usr/bin/env bash
# Model-checks model/ring.pml with spin (see model/README.md). Every run has an
# expected outcome: "pass" (spin reports errors: 0) or a failure whose text spin must
# print. Exits non-zero if any run differs from its expectation, or on any tool error.
# Runs two checks at a time, in a temporary directory; under two minutes on 2 cores.
# MODEL_FULL=1 adds the long runs (two-death liveness, 3 frames on 3 slots liveness,
# larger 3-writer configurations).
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)

if ! command -v spin >/dev/null; then
	echo "model: spin is not installed; installing it with apt-get (Debian package 'spin')"
	sudo=""
	[ "$(id -u)" -eq 0 ] || sudo="sudo"
	$sudo apt-get install -y spin >/dev/null 2>&1 || { $sudo apt-get update >/dev/null && $sudo apt-get install -y spin >/dev/null; }
fi
command -v gcc >/dev/null || { echo "model: gcc is needed" >&2; exit 2; }

work=$(mktemp -d "${TMPDIR:-/tmp}/ring-model.XXXXXX")
trap 'rm -rf "$work"' EXIT
cp "$here/ring.pml" "$work/"

# run NAME EXPECT MODE [spin -D flags...]; EXPECT: pass | fail:<text in pan's output>
run() {
	local name=$1 expect=$2 mode=$3; shift 3
	local d="$work/$name"
	mkdir -p "$d" && cp "$work/ring.pml" "$d/" && cd "$d"
	if ! spin "$@" -a ring.pml >spin.out 2>&1; then
		echo "FAIL  $name: spin -a failed"; cat spin.out; return 1
	fi
	local cflags=(-O2 -DCOLLAPSE) pflags=(-m2000000)
	if [ "$mode" = np ]; then cflags+=(-DNP); pflags+=(-l); else cflags+=(-DSAFETY); fi
	gcc "${cflags[@]}" -o pan pan.c 2>gcc.out || { echo "FAIL  $name: gcc failed"; cat gcc.out; return 1; }
	./pan "${pflags[@]}" >pan.out 2>&1 || true
	local errors states depth secs first
	errors=$(grep -oE 'errors: [0-9]+' pan.out | awk '{print $2}')
	states=$(grep -E 'states, stored' pan.out | awk '{print $1}')
	depth=$(grep -oE 'depth reached [0-9]+' pan.out | awk '{print $3}')
	secs=$(grep -oE 'elapsed time [0-9.e+]+' pan.out | awk '{print $3}')
	first=$(grep -m1 -E '^pan:1:' pan.out | cut -c1-90 || true)
	local summary="$name [$mode $*]: errors=${errors:-?} states=${states:-?} depth=${depth:-?} time=${secs:-?}s"
	if grep -q 'Search not completed' pan.out && [ "${errors:-1}" = 0 ]; then
		echo "FAIL  $summary: search incomplete"; return 1
	fi
	case $expect in
	pass)
		if [ "${errors:-1}" = 0 ]; then echo "ok    $summary"; return 0; fi
		echo "FAIL  $summary: $first"
		spin "$@" -t -p ring.pml 2>&1 | tail -40
		return 1 ;;
	fail:*)
		if [ "${errors:-0}" != 0 ] && grep -qF -- "${expect#fail:}" pan.out; then
			echo "ok    $summary (rejected, as expected: $first)"; return 0
		fi
		echo "FAIL  $summary: expected spin to report '${expect#fail:}'"; return 1 ;;
	esac
}

checks=(
	# The protocol as written (both fixes, README.md): 2 writers x 2 frames, 2 readers,
	# 2 slots, batches of up to 2, at most one kill -9 anywhere.
	"safety|pass|safety"
	"liveness-no-death|pass|np -DMAXD=0"
	"liveness-one-death|pass|np"
	"anytime-timeouts|pass|safety -DANYWAKE"
	"batch-1|pass|safety -DBATCH=1"
	"batch-1-liveness|pass|np -DBATCH=1"
	"two-deaths|pass|safety -DMAXD=2"
	"3-frames-3-slots|pass|safety -DNF=3 -DS=3"
	# 3 writers x 1 frame, 1 reader: the last-writer decision (ENDED) and the exact
	# lost-writer count, with one kill anywhere or only outside critical sections.
	"3-writers-no-death|pass|np -DNW=3 -DNR=1 -DNF=1 -DBATCH=1 -DMAXD=0"
	"3-writers-one-death|pass|safety -DNW=3 -DNR=1 -DNF=1 -DBATCH=1"
	"3-writers-killed-outside-cs|pass|safety -DNW=3 -DNR=1 -DNF=1 -DBATCH=1 -DKILL_OUTSIDE_CS"
	"3-writers-one-death-liveness|pass|np -DNW=3 -DNR=1 -DNF=1 -DBATCH=1"
	# The protocol before the fixes must be rejected.
	# F1: a writer killed between setting the header state to ended and publishing
	# FINAL left the readers waiting forever.
	"old-F1-reader-hang|fail:non-progress cycle|np -DOLD_F1"
	# F2: with 3 writers, one killed after bumping WRITERS_ENDED made another send
	# FINAL while a third was still sending (and the lost-writer count was wrong).
	"old-F2-lost-count|fail:assertion violated (lost==w_dead_noend)|safety -DOLD_F2 -DNW=3 -DNR=1 -DNF=1 -DBATCH=1"
	"old-F2-final-too-early|fail:assertion violated (nfinal==0)|safety -DOLD_F2 -DNW=3 -DNR=1 -DNF=1 -DBATCH=1 -DNO_LOST_CHECK"
	"old-F2-killed-outside-cs|fail:assertion violated (nfinal==0)|safety -DOLD_F2 -DNW=3 -DNR=1 -DNF=1 -DBATCH=1 -DNO_LOST_CHECK -DKILL_OUTSIDE_CS"
	# The model can fail: deliberately broken variants must be rejected.
	"broken-early-publish|fail:assertion violated (s_pub|safety -DBROKEN_EARLY_PUBLISH"
	"broken-no-undo|fail:assertion violated (removed|safety -DBROKEN_NO_UNDO"
	"broken-no-undo-hang|fail:non-progress cycle|np -DBROKEN_NO_UNDO -DNO_INV"
	# ENDED without SEM_UNDO: a writer killed after its END leaves ENDED too high, so
	# F2 comes back.
	"broken-ended-no-undo|fail:assertion violated (nfinal==0)|safety -DBROKEN_ENDED_NO_UNDO -DNO_INV -DNO_LOST_CHECK -DNW=3 -DNR=1 -DNF=1 -DBATCH=1"
	# leave must lower ENDED whenever the writer raised it, also with finished = false
	# (END sent, then PeerGone): else ENDED stays too high until exit and F2 comes back.
	"broken-leave-ended-if-finished|fail:assertion violated (nfinal==0)|safety -DLEAVE_ENDED_IF_FINISHED -DNO_INV -DNW=3 -DNR=1 -DNF=1 -DBATCH=1"
)
if [ "${MODEL_FULL:-0}" = 1 ]; then
	checks+=(
		"two-deaths-liveness|pass|np -DMAXD=2"
		"3-frames-3-slots-liveness|pass|np -DNF=3 -DS=3"
		"anytime-timeouts-two-deaths|pass|safety -DANYWAKE -DMAXD=2"
		"3-writers-two-deaths|pass|safety -DNW=3 -DNR=1 -DNF=1 -DBATCH=1 -DMAXD=2"
		"3-writers-2-frames|pass|safety -DNW=3 -DNR=1 -DNF=2 -DBATCH=1"
		"3-writers-2-readers|pass|safety -DNW=3 -DNR=2 -DNF=1 -DBATCH=1"
		"3-writers-anytime-timeouts|pass|safety -DANYWAKE -DNW=3 -DNR=1 -DNF=1 -DBATCH=1"
	)
fi

echo "model: spin $(spin -V | awk '{print $3}'), ${#checks[@]} checks, 2 at a time, in $work"
start=$SECONDS
jobs_max=${MODEL_JOBS:-2}
i=0
pids=()
for c in "${checks[@]}"; do
	IFS='|' read -r name expect spec <<<"$c"
	# shellcheck disable=SC2086
	( run "$name" "$expect" $spec >"$work/$i.log" 2>&1; echo $? >"$work/$i.rc" ) &
	pids+=($!)
	i=$((i + 1))
	while [ "$(jobs -rp | wc -l)" -ge "$jobs_max" ]; do sleep 0.2; done
done
wait
failed=0
for ((j = 0; j < i; j++)); do
	cat "$work/$j.log"
	[ "$(cat "$work/$j.rc")" = 0 ] || failed=$((failed + 1))
done
echo "model: $((i - failed))/$i checks as expected in $((SECONDS - start)) s"
[ "$failed" = 0 ]
