/*
 * ring.pml -- a Promela model of the shared-mode ring protocol (PROTOCOL.md §4, 8-13;
 * crates/shm_common/src/ring.rs and session.rs). `make model` checks it; what is
 * modelled, what is abstracted and the results are in model/README.md.
 *
 * One System V semaphore set of 9 members, changed ONLY by atomic { } blocks that
 * mirror one semop(2) call each: every operation of the call is applied or none is,
 * and a blocking call waits while any operation would make its member negative.
 * A SEM_UNDO operation also subtracts its delta from adj[proc][member]; a killed
 * process has its adjustments applied by the "kernel" (the killer process) in the
 * same atomic step as its death, and then vanishes.
 *
 * By default this is the protocol with both fixes of README.md: a reader gives up on
 * dead writers when WRITERS == 0 && FILLED == 0 (F1), and a 9th member ENDED counts
 * the live writers that published END/FINAL, so the last writer still sending is
 * the one that finds WRITERS - ENDED <= 1 (F2). OLD_F1 / OLD_F2 restore the old ones.
 *
 * Compile-time parameters (spin -DNAME=value):
 *   NW writers (1..3), NR readers (1..2), NF DATA frames per writer (1..3),
 *   S slots (2..3), BATCH most frames per semop (1..2), MAXD kill -9s per run (0..2).
 *   ANYWAKE     a 100 ms / 1 s timeout may fire at any instant (default: only when
 *               no other process can move, Promela's `timeout`).
 *   BROKEN_EARLY_PUBLISH  the writer publishes (FILLED += k) before the header of
 *               the batch's last frame is written: spin must find a torn read.
 *   BROKEN_NO_UNDO        WRITE_MUTEX taken and given without SEM_UNDO: spin must
 *               find the mutex lost when a writer dies inside its critical section.
 *   OLD_F1      the protocol before the fix of finding F1 (README.md): a reader
 *               does not give up on dead writers while the header state is ended
 *               (check_writers: WRITERS == 0 && state != ended && FILLED == 0).
 *               spin must find readers hanging.
 *   OLD_F2      the protocol before the fix of finding F2: no ENDED member;
 *               "last writer" and the lost-writer count from the header counters
 *               (WRITERS - (WRITERS_ENDED - WRITERS_FINISHED)). spin must find FINAL
 *               published while a writer is still sending (needs NW >= 3).
 *   BROKEN_ENDED_NO_UNDO  ENDED raised and lowered without SEM_UNDO: spin must
 *               find that a writer killed after its END leaves ENDED too high.
 *   LEAVE_ENDED_IF_FINISHED  leave lowers ENDED only with finished = true (a writer
 *               that sent END and then leaves with PeerGone keeps it raised until
 *               its exit): spin must find FINAL sent while a writer still sends.
 *   KILL_OUTSIDE_CS  kill only processes outside any critical section.
 *   NO_INV      do not run the invariant monitor (to see what else breaks).
 *   NO_LOST_CHECK  skip the exactness check of the reader's lost-writer count.
 */

#ifndef NW
#define NW 2
#endif
#ifndef NR
#define NR 2
#endif
#ifndef NF
#define NF 2
#endif
#ifndef S
#define S 2
#endif
#ifndef BATCH
#define BATCH 2
#endif
#ifndef MAXD
#define MAXD 1
#endif

#define NP (NW + NR)                   /* processes: writers 0..NW-1, readers NW.. */
#define WB (BATCH < S -> BATCH : S)     /* Producer::new: max_batch.clamp(1, slots) */
#define RB (BATCH < S -> BATCH : S)     /* batch_limit(): min(max_batch, slots) */
#define HALF (S / 2 > 1 -> S / 2 : 1)  /* max(1, slots/2) */
#define NONE 255

#ifdef ANYWAKE
#define WAKE true
#else
#define WAKE timeout
#endif

/* ---- the semaphore set (PROTOCOL.md §4) ---- */
#define FREE   0
#define FILLED 1
#define WM     2   /* WRITE_MUTEX */
#define RM     3   /* READ_MUTEX */
#define HEAD   4
#define TAIL   5
#define WRS    6   /* WRITERS */
#define RDS    7   /* READERS */
#define ENDM   8   /* ENDED: live writers that have published their END or FINAL */
#define NM     9

byte sem[NM];
short adj[NP * NM];                    /* SEM_UNDO adjustments, per process and member */
#define A(p, m) adj[(p) * NM + (m)]

/* one operation of a semop, without / with SEM_UNDO (use only inside atomic) */
#define OP(m, d)      sem[m] = sem[m] + (d)
#define UOP(p, m, d)  sem[m] = sem[m] + (d); A(p, m) = A(p, m) - (d)

/* ---- the header (PROTOCOL.md §3); joins are abstracted: everyone has joined ---- */
#define ST_OPEN  1
#define ST_ENDED 2
byte hstate = ST_OPEN;
byte w_ended;        /* header WRITERS_ENDED, bumped under WRITE_MUTEX in finish */
byte w_finished;     /* WRITERS_FINISHED, bumped under both mutexes */
byte r_finished;     /* READERS_FINISHED, bumped under both mutexes */
#define W_JOINED NW
#define R_JOINED NR
bool removed;        /* IPC_RMID done by the last to leave */

/* ---- slots: (writer, seq, kind) and whether completely written ---- */
#define EMPTY   0
#define WRITING 1    /* payload being copied, header not yet written */
#define WRITTEN 2    /* header written last: the frame is complete */
#define DATA  1
#define END   2
#define FINAL 3
byte s_st[S];
byte s_w[S];
byte s_seq[S];
byte s_kind[S];
bool s_pub[S];       /* ghost: published (counted in FILLED), not yet freed by a reader */

/* ---- ghost state for the properties ---- */
byte pub[NW];        /* DATA frames of each writer published */
byte rel[NW];        /* DATA frames of each writer consumed (freed by a reader's release) */
byte limbo[6];       /* reader: DATA frames released but not yet written to its output */
byte nlost;          /* frames lost with a reader killed between release and output */
byte held[6];        /* slots held in a critical section (writer: FREE, reader: FILLED) */
byte wm_holder = NONE;
byte rm_holder = NONE;
bool w_didend[NW];   /* the writer bumped WRITERS_ENDED */
bool w_endpub[NW];   /* ghost: published its END/FINAL, still live, not yet left */
bool killed[6];      /* killed (the kernel has applied its undo) */
bool dead[6];        /* killed and vanished */
bool done[6];        /* left the session (or removed it) */
byte nkilled;
byte w_dead;         /* writers killed */
byte w_dead_noend;   /* writers killed before bumping WRITERS_ENDED */
byte r_dead;         /* readers killed */
byte nfinal;         /* FINAL frames published */
byte r_eos;          /* readers that saw FINAL */
byte peergone_w;     /* writers that gave up with PeerGone (readers gone) */
byte peergone_r;     /* readers that gave up with PeerGone (writers gone) */

#define SAT(a, b) ((a) > (b) -> (a) - (b) : 0)
/* Snapshot::writers_still_sending, lost_writers, lost_readers (session.rs) */
#ifdef OLD_F2
/* before the fix: "ended but live" from the header counters, which a writer killed
 * after bumping WRITERS_ENDED and before leaving keeps counting forever */
#define STILL_SENDING  SAT(sem[WRS], SAT(w_ended, w_finished))
#else
/* the fix: the kernel keeps ENDED (raised with SEM_UNDO in the END/FINAL publish,
 * lowered with SEM_UNDO in leave or by the undo of a death) */
#define STILL_SENDING  SAT(sem[WRS], sem[ENDM])
#endif
#define LOST_WRITERS   SAT(SAT(W_JOINED, w_ended), STILL_SENDING)
#define LOST_READERS   SAT(R_JOINED, r_finished + sem[RDS])

/* ---- (4) semaphore invariants, checked in every reachable state ---- */
#define HELD_ALL (held[0] + held[1] + held[2] + held[3] + held[4] + held[5])
#define RHELD    (held[NW] + (NR > 1 -> held[NW + 1] : 0))
#define ENDPUB   (w_endpub[0] + (NW > 1 -> w_endpub[1] : 0) + (NW > 2 -> w_endpub[2] : 0))
#define INV ( removed || ( \
      sem[FREE] + sem[FILLED] + HELD_ALL == S \
   && sem[HEAD] < S && sem[TAIL] < S \
   && (sem[TAIL] + sem[FILLED] + RHELD) % S == sem[HEAD] \
   && sem[WM] <= 1 && sem[RM] <= 1 \
   && sem[WM] == (wm_holder == NONE -> 1 : 0) \
   && sem[RM] == (rm_holder == NONE -> 1 : 0) \
   && sem[ENDM] == ENDPUB_SEM && sem[ENDM] <= sem[WRS] ))

#ifdef OLD_F2
#define ENDPUB_SEM 0
#else
#define ENDPUB_SEM ENDPUB    /* ENDED = live writers that published END/FINAL */
#endif

proctype invariants()
{
end:
	atomic { !INV -> assert(INV) }
}

/* ==================================================================== writer */

#define NEXTK(want) (fr > 0 -> (fr < want -> fr : want) : (want < HALF -> want : HALF))
#define KK(want) (k == 0 -> want : k)

/* What happens in the same step as a successful acquiring semop: read HEAD (GETVAL),
 * and copy the frames into the held slots. Nobody else can see held slots, so a
 * kill before or after the copy is the same kill (see README.md). fin: END/FINAL. */
inline w_took(fin)
{
	held[me] = k; wm_holder = me;
	h = sem[HEAD];
	assert(h < S);
	if
	:: fin ->
		/* Producer::finish, with WRITE_MUTEX held */
		last = (STILL_SENDING <= 1);
		w_ended++;                          /* WRITERS_ENDED += 1 */
		w_didend[me] = true;
		assert(!s_pub[h]);
		s_w[h] = me; s_seq[h] = pub[me]; s_kind[h] = (last -> FINAL : END);
		s_st[h] = WRITTEN
	:: else ->
		q = 0;
		do
		:: q < k ->
			assert(!s_pub[(h + q) % S]);    /* never overwrite a published, unread frame */
			s_w[(h + q) % S] = me; s_seq[(h + q) % S] = pub[me] + q;
			s_kind[(h + q) % S] = DATA;
#ifdef BROKEN_EARLY_PUBLISH
			s_st[(h + q) % S] = (q == k - 1 -> WRITING : WRITTEN);
#else
			s_st[(h + q) % S] = WRITTEN;
#endif
			q++
		:: else -> break
		od;
		q = 0
	fi;
	fr = 0; blk = false
}

inline w_take()
{
	UOP(me, FREE, -k);
#ifdef BROKEN_NO_UNDO
	OP(WM, -1);
#else
	UOP(me, WM, -1);
#endif
}

/* Producer::acquire(want): semop([{FREE,-k,UNDO},{WRITE_MUTEX,-1,UNDO}]) first with
 * IPC_NOWAIT and k = want; if that fails, GETALL and k = min(want, FREE), or, if no
 * slot is free, a blocking semtimedop (100 ms) for k = min(want, max(1, slots/2)),
 * with check_readers after each timeout. k == 0 stands for "not tried yet: want". */
inline w_acquire(want, fin)
{
	do
	:: !blk ->
		/* IPC_NOWAIT. While slots are free but the mutex is taken, the real loop
		 * retries at once (a busy wait); the model waits for a change instead. */
		atomic {
			(sem[WM] >= 1 || sem[FREE] < KK(want)) ->
			if
			:: sem[FREE] >= KK(want) && sem[WM] >= 1 ->
				k = KK(want); w_take(); w_took(fin); break
			:: else ->
				fr = sem[FREE];             /* GETALL */
				k = NEXTK(want);
				blk = (fr == 0); fr = 0
			fi
		}
	:: blk ->
		if
		:: atomic { sem[FREE] >= k && sem[WM] >= 1 -> w_take(); w_took(fin) }; break
		:: atomic { WAKE ->                 /* timed out: GETALL, check_readers */
			/* every reader that came is gone: confirmed under both mutexes (a
			 * locked snapshot; while a mutex is busy nothing is concluded) */
			gone = (sem[RDS] == 0 && LOST_READERS > 0 && sem[WM] >= 1 && sem[RM] >= 1);
			fr = sem[FREE];
			k = NEXTK(want); fr = 0
		   };
			if
			:: gone -> goto wgone
			:: else
			fi
		fi
	od
}

/* Producer::publish: [{FREE,+k,UNDO},{FREE,-k},{HEAD,d},{FILLED,+k},{WM,+1,UNDO}],
 * and for END/FINAL also {ENDED,+1,UNDO} */
inline publish(kind)
{
	UOP(me, FREE, k); OP(FREE, -k);
	sem[HEAD] = (sem[HEAD] + k) % S;
	OP(FILLED, k);
#ifdef BROKEN_NO_UNDO
	OP(WM, 1);
#else
	UOP(me, WM, 1);
#endif
	if
	:: kind != DATA ->
#ifndef OLD_F2
#ifdef BROKEN_ENDED_NO_UNDO
		OP(ENDM, 1);
#else
		UOP(me, ENDM, 1);                   /* {ENDED,+1,SEM_UNDO}, same semop */
#endif
#endif
		w_endpub[me] = true
	:: else
	fi;
	held[me] = 0; wm_holder = NONE;
	assert(nfinal == 0);                    /* nothing is published after FINAL */
	q = 0;
	do
	:: q < k -> s_pub[(h + q) % S] = true; q++
	:: else -> break
	od;
	q = 0;
	if
	:: kind == DATA -> pub[me] = pub[me] + k
	:: kind == FINAL -> nfinal++
	:: else
	fi;
	k = 0; h = 0
}

/* Session::leave(finished): both mutexes in one semop; snapshot; bump finished; the
 * last one removes, the others release with [{ROLE,-1,UNDO}, mutexes +1], plus
 * {ENDED,-1,UNDO} for a writer that published its END/FINAL. A kill
 * between these steps is the same as a kill before or after them (the kernel's undo
 * does what the release would), so they are one step here. */
inline leave(fin, role)
{
	atomic {
		sem[WM] >= 1 && sem[RM] >= 1 ->
		if
		:: fin && role == WRS -> w_finished++
		:: fin && role == RDS -> r_finished++
		:: else
		fi;
		if
		:: sem[WRS] + sem[RDS] - 1 == 0 ->     /* no other live process */
			removed = true;                    /* semctl(IPC_RMID), shmctl(IPC_RMID) */
			q = 0;
			do
			:: q < NP -> assert(q == me || killed[q] || done[q]); q++
			:: else -> break
			od;
			q = 0
		:: else ->
			UOP(me, role, -1);                 /* mutexes: -1 and +1 in one step */
			if
#ifdef BROKEN_ENDED_NO_UNDO
			:: role == WRS && w_endpub[me] -> OP(ENDM, -1)
#elif defined(LEAVE_ENDED_IF_FINISHED)
			:: role == WRS && A(me, ENDM) != 0 && fin -> UOP(me, ENDM, -1)
#else
			/* whenever this writer raised ENDED, finished or not (a writer that
			 * sent END may still leave with PeerGone or Ctrl-C) */
			:: role == WRS && A(me, ENDM) != 0 -> UOP(me, ENDM, -1)
#endif
			:: else
			fi
		fi;
		if
		:: role == WRS && A(me, ENDM) == 0 -> w_endpub[me] = false
		:: else
		fi;
		done[me] = true
	}
}

proctype writer(byte me)
{
	byte k, h, fr, q, idx_last;
	bool blk, last, gone;

	{
	do
	:: pub[me] < NF ->
		w_acquire((NF - pub[me] < WB -> NF - pub[me] : WB), false);
#ifdef BROKEN_EARLY_PUBLISH
		atomic { idx_last = (h + k - 1) % S; publish(DATA) };
		s_st[idx_last] = WRITTEN;          /* the header, too late */
		idx_last = 0
#else
		atomic { publish(DATA) }
#endif
	:: else -> break
	od;

	/* Producer::finish: acquire(1); END or FINAL written in w_took(true) */
	w_acquire(1, true);
	if
	:: atomic { last -> hstate = ST_ENDED };  /* header state store ... */
		atomic { publish(FINAL) }          /* ... then the semop: two steps */
	:: atomic { !last -> publish(END) }
	fi;

	/* pump_input: check_peers_now (all readers joined at the start: no wait) */
	atomic {
		gone = (sem[RDS] == 0 && LOST_READERS > 0 && sem[WM] >= 1 && sem[RM] >= 1);
		last = false
	};
	if
	:: gone -> goto wgone
	:: else
	fi;
	leave(true, WRS);
	goto wend;
wgone:
	atomic { peergone_w++; assert(r_dead > 0) }   /* PeerGone only if a reader died */
	leave(false, WRS);
wend:
#ifdef LEAVE_ENDED_IF_FINISHED
	/* exit(): the kernel applies what is left of the undo (only ENDED can be) */
	atomic { sem[ENDM] = sem[ENDM] + A(me, ENDM); A(me, ENDM) = 0; w_endpub[me] = false }
#else
	skip
#endif
	} unless {
		killed[me] ->
		atomic {
			dead[me] = true;
			k = 0; h = 0; fr = 0; q = 0; blk = false; last = false; gone = false
		}
	}
}

/* ==================================================================== reader */

/* The successful semop [{FILLED,-k,UNDO},{READ_MUTEX,-1,UNDO}], then TAIL (GETVAL)
 * and take_slot for each of the k frames: copy out and validate (frames cannot
 * change while we hold them, so the copy is part of the same step). */
inline r_took()
{
	held[me] = k; rm_holder = me;
	t = sem[TAIL];
	assert(t < S);
	c = 0; nb = 0; j = 0;
	do
	:: j < k ->
		assert(s_pub[(t + j) % S] && s_st[(t + j) % S] == WRITTEN);  /* (1) no torn/stale frame */
		if
		:: s_kind[(t + j) % S] == FINAL -> eos = true; break   /* not consumed */
		:: s_kind[(t + j) % S] == DATA -> c++; nb++
		:: s_kind[(t + j) % S] == END -> c++
		fi;
		j++
	:: else -> break
	od;
	j = 0
}

proctype reader(byte me)
{
	byte k, t, j, c, nb, q, lost;
	bool eos, gone;

	{
	do
	:: !eos ->
		/* Consumer::acquire. The fast path tries k = a hint from the header counters
		 * (IPC_NOWAIT), the slow path takes 1 (100 ms timeout), after a timeout
		 * k = min(FILLED, batch) (IPC_NOWAIT): every successful call takes some k
		 * in 1..min(FILLED, batch), and the model lets it take any of them. */
		do
		:: atomic {
			sem[FILLED] >= 1 && sem[RM] >= 1 ->
			if
			:: k = 1
			:: RB >= 2 && sem[FILLED] >= 2 -> k = 2
			fi;
			UOP(me, FILLED, -k); UOP(me, RM, -1);
			r_took()
		   };
			break
		:: atomic { WAKE ->                /* timed out; check_writers if FILLED = 0 */
#ifdef OLD_F1
			gone = (sem[FILLED] == 0 && sem[WRS] == 0 && hstate != ST_ENDED
			        && sem[WM] >= 1 && sem[RM] >= 1)   /* confirmed under both mutexes */
#else
			/* FINAL, once published, stays in FILLED: FILLED = 0 means it never was */
			gone = (sem[FILLED] == 0 && sem[WRS] == 0
			        && sem[WM] >= 1 && sem[RM] >= 1)   /* confirmed under both mutexes */
#endif
			lost = (gone -> LOST_WRITERS : 0)      /* the PeerGone message's count */
		   };
			if
			:: gone -> goto rgone
			:: else
			fi
		od;
		/* release: [{FILLED,+k,UNDO},{FILLED,-c},{TAIL,d},{FREE,+c},{RM,+1,UNDO}] */
		atomic {
			UOP(me, FILLED, k);
			assert(sem[FILLED] >= c);
			OP(FILLED, -c);
			sem[TAIL] = (sem[TAIL] + c) % S;
			OP(FREE, c);
			UOP(me, RM, 1);
			held[me] = 0; rm_holder = NONE;
			j = 0;
			do
			:: j < c ->
				if
				:: s_kind[(t + j) % S] == DATA ->
					/* (2)+(3) consumed exactly in each writer's order, each once,
					 * and only what was published: no duplicate, no gap */
					assert(s_seq[(t + j) % S] == rel[s_w[(t + j) % S]]);
					assert(s_seq[(t + j) % S] < pub[s_w[(t + j) % S]]);
					rel[s_w[(t + j) % S]]++
				:: else
				fi;
				s_pub[(t + j) % S] = false; s_st[(t + j) % S] = EMPTY;
				s_w[(t + j) % S] = 0; s_seq[(t + j) % S] = 0; s_kind[(t + j) % S] = 0;
				j++
			:: else -> break
			od;
			j = 0; k = 0; t = 0; c = 0;
			limbo[me] = nb; nb = 0
		}
		/* step 5: write the payloads to the output (a kill before this loses them) */
		limbo[me] = 0
	:: eos -> break
	od;

	/* drain(): lost_writers from a locked snapshot (a plain one after 1 s) */
	if
	:: atomic { sem[WM] >= 1 && sem[RM] >= 1 -> lost = LOST_WRITERS; r_eos++ }
	:: atomic { WAKE -> lost = LOST_WRITERS; r_eos++ }
	fi;
#ifndef NO_LOST_CHECK
	assert(lost == w_dead_noend);          /* the lost-writer report is exact */
#endif
	lost = 0;
	leave(true, RDS);
	goto rend;
rgone:
	atomic {
		peergone_r++; assert(w_dead > 0);     /* PeerGone only if a writer died */
#ifndef NO_LOST_CHECK
		assert(lost == w_dead_noend);         /* its lost-writer count is exact */
#endif
		lost = 0
	}
	leave(false, RDS);
rend:
	skip
	} unless {
		killed[me] ->
		atomic {
			dead[me] = true;
			k = 0; t = 0; j = 0; c = 0; nb = 0; lost = 0; eos = false; gone = false
		}
	}
}

/* ==================================================================== kill -9 */

#ifdef KILL_OUTSIDE_CS
#define CSFREE(i) (held[i] == 0 && wm_holder != i && rm_holder != i)
#else
#define CSFREE(i) true
#endif
#define VICTIM(i) :: (i < NP && nkilled < MAXD && !done[i] && !killed[i] && !removed && CSFREE(i)) -> v = i

proctype killer()
{
	byte v, m;
end:
	do
	:: atomic {
		if
		VICTIM(0)
		VICTIM(1)
		VICTIM(2)
		VICTIM(3)
		VICTIM(4)
		VICTIM(5)
		fi;
		/* exit(): the kernel applies the victim's SEM_UNDO adjustments */
		m = 0;
		do
		:: m < NM ->
			assert(sem[m] + A(v, m) >= 0);   /* Linux would clamp at 0: never needed */
			sem[m] = sem[m] + A(v, m);
			A(v, m) = 0;
			m++
		:: else -> break
		od;
		held[v] = 0;
		if
		:: wm_holder == v -> wm_holder = NONE
		:: else
		fi;
		if
		:: rm_holder == v -> rm_holder = NONE
		:: else
		fi;
		killed[v] = true;
		nkilled++;
		if
		:: v < NW -> w_endpub[v] = false
		:: else
		fi;
		if
		:: v < NW ->
			w_dead++;
			if
			:: !w_didend[v] -> w_dead_noend++
			:: else
			fi
		:: else ->
			r_dead++;
			nlost = nlost + limbo[v]; limbo[v] = 0
		fi;
		v = 0; m = 0
	   }
	:: break                               /* no (more) deaths in this run */
	od
}

/* ==================================================================== setup, end */

#define ALLOVER ((done[0] || dead[0]) && (done[1] || dead[1]) \
	&& (NP < 3 || done[2] || dead[2]) && (NP < 4 || done[3] || dead[3]) \
	&& (NP < 5 || done[4] || dead[4]) && (NP < 6 || done[5] || dead[5]))

init
{
	byte i;
	atomic {
		/* the session once every peer has joined (joins are abstracted) */
		sem[FREE] = S; sem[WM] = 1; sem[RM] = 1;
		sem[WRS] = NW; sem[RDS] = NR;
		i = 0;
		do
		:: i < NW -> A(i, WRS) = -1; run writer(i); i++
		:: i >= NW && i < NP -> A(i, RDS) = -1; run reader(i); i++
		:: else -> break
		od;
#ifndef NO_INV
		run invariants();
#endif
		run killer();
		i = 0
	}
	(ALLOVER);                             /* every process left or died */
	atomic {
		assert(nfinal <= 1);
		i = 0;
		do
		:: i < NW ->
			/* (2)+(6) while a reader survives, every frame published by any writer,
			 * dead or alive, is consumed; with no death, all NF frames */
			if
			:: r_dead < NR -> assert(rel[i] == pub[i])
			:: else
			fi;
			if
			:: nkilled == 0 -> assert(pub[i] == NF && rel[i] == NF)
			:: else
			fi;
			i++
		:: else -> break
		od;
		assert(r_dead > 0 || nlost == 0);     /* frames are lost only with a dead reader */
		if
		:: nkilled == 0 ->
			assert(nfinal == 1 && r_eos == NR && peergone_w == 0 && peergone_r == 0
			       && removed && w_finished == NW && r_finished == NR)
		:: else
		fi;
		/* a surviving reader ended with the whole stream or with PeerGone */
		assert(r_dead == NR || r_eos + peergone_r > 0)
	}
}
