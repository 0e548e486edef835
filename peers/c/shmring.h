/*
 * shmring.h - the System V shared-memory ring of PROTOCOL.md, in C11.
 *
 * This is the C reference peer of the Rust `writer` and `reader`: one segment (a
 * 4096-byte header page, then a ring of slots) and one semaphore set of nine members
 * at one key. Everything a process needs to take part is here: the numbers both
 * sides must agree on, key parsing, CRC-32C, creating / joining / leaving a session
 * (with the recovery of stale leftovers), sending and receiving frames, and the
 * liveness checks.
 *
 * Read it next to the classic handout ("process A does shmget/shmat/strcpy,
 * process B attaches and reads"). The handout works only if B happens to run after
 * A has finished writing and before anyone writes again; every addition below is
 * there to remove one of those "happens to".
 *
 * Conventions: a function that can fail returns -1 and fills the caller's
 * `sr_error` (exit code, one-line message, one-line hint); 0 (or a documented
 * non-negative value) means success. Nothing here prints except sr_note() and
 * sr_report().
 */
#ifndef SHMRING_H
#define SHMRING_H

#include <signal.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

/* PROTOCOL.md section 1: every integer in the segment is little-endian, and the
 * fields both sides change with atomic instructions are in the CPU's own order.
 * The two agree only on little-endian machines, so refuse to build elsewhere
 * rather than disagree with the Rust peer. */
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "the shmring layout is little-endian; big-endian targets are not supported"
#endif

/* ---------------------------------------------------------------------------
 * Layout (PROTOCOL.md section 2), version 3.
 * ------------------------------------------------------------------------- */

#define SR_MAGIC 0x474E524D48535653ULL /* the bytes "SVSHMRNG", little-endian */
/* Version 3 (Rust: layout::VERSION): the creator marks its new set with
 * SR_SIGNATURE, releasing semops never wait, shared sessions check their counts,
 * the default key is per uid. */
#define SR_VERSION 3u
#define SR_HEADER_SIZE 4096u
#define SR_FRAME_HEADER 32u
#define SR_SLOT_ALIGN 64u
#define SR_MIN_SLOT_SIZE (SR_FRAME_HEADER + SR_SLOT_ALIGN) /* 96; as a multiple of 64: 128 */
#define SR_MAX_SLOT_SIZE (1u << 30)
#define SR_MAX_SLOTS 32767u /* SEMVMX: FREE and FILLED are semaphore values */
#define SR_DEFAULT_SLOT_SIZE (64u * 1024)
#define SR_DEFAULT_LINES_SLOT_SIZE (8u * 1024)
#define SR_DEFAULT_RING_BYTES (4u << 20)
#define SR_DEFAULT_BATCH 256u
#define SR_MAX_BATCH_BYTES (512u << 10) /* a batch is also capped at 512 KiB of slots */
#define SR_MAX_PEERS 32
#define SR_PEER_ENTRY 16

/* Header field offsets, bytes from the start of the segment. */
enum {
    SR_OFF_MAGIC = 0,              /* u64, written last by the creator */
    SR_OFF_VERSION = 8,            /* u32 */
    SR_OFF_HEADER_SIZE = 12,       /* u32, 4096 */
    SR_OFF_SLOT_COUNT = 16,        /* u32 */
    SR_OFF_SLOT_SIZE = 20,         /* u32, frame header included */
    SR_OFF_SEGMENT_SIZE = 24,      /* u64 */
    SR_OFF_STATE = 32,             /* u32: SR_STATE_* */
    SR_OFF_FLAGS = 36,             /* u32: SR_FLAG_* */
    SR_OFF_WRITERS_JOINED = 40,    /* u32, under both mutexes */
    SR_OFF_READERS_JOINED = 44,    /* u32, under both mutexes */
    SR_OFF_WRITERS_FINISHED = 48,  /* u32, under both mutexes */
    SR_OFF_READERS_FINISHED = 52,  /* u32, under both mutexes */
    SR_OFF_FRAMES_PUBLISHED = 56,  /* u64 DATA frames, under WRITE_MUTEX */
    SR_OFF_BYTES_PUBLISHED = 64,   /* u64, under WRITE_MUTEX */
    SR_OFF_FRAMES_CONSUMED = 72,   /* u64 DATA frames, under READ_MUTEX */
    SR_OFF_BYTES_CONSUMED = 80,    /* u64, under READ_MUTEX */
    SR_OFF_WRITE_MUTEX_HOLDER = 88, /* i32 pid, informational */
    SR_OFF_READ_MUTEX_HOLDER = 92, /* i32 pid, informational */
    SR_OFF_CREATOR_PID = 96,       /* i32 */
    SR_OFF_NEXT_WRITER_ID = 100,   /* u32, under both mutexes */
    SR_OFF_WRITERS_ENDED = 104,    /* u32, under WRITE_MUTEX */
    SR_OFF_PEERS = 128             /* SR_MAX_PEERS entries: i32 pid, u32 role, u32 id, u32 0 */
};

enum { SR_STATE_INITIALISING = 0, SR_STATE_OPEN = 1, SR_STATE_ENDED = 2 };
#define SR_FLAG_PERSIST 1u /* the stream may outlive its writer until a reader comes */
#define SR_FLAG_SHARED 2u  /* --lines: many writers, many readers */
enum { SR_ROLE_WRITER = 1, SR_ROLE_READER = 2 };
enum { SR_KIND_DATA = 1, SR_KIND_END = 2, SR_KIND_FINAL = 3 };

/* The nine semaphores (PROTOCOL.md section 3), in index order. */
enum {
    SR_FREE,        /* free slots: writers take, readers give */
    SR_FILLED,      /* published, unread frames: readers take, writers give */
    SR_WRITE_MUTEX, /* 1 = free; always taken with SEM_UNDO */
    SR_READ_MUTEX,  /* 1 = free; always taken with SEM_UNDO */
    SR_HEAD,        /* next slot to write; moves in the publishing semop */
    SR_TAIL,        /* next slot to read; moves in the releasing semop */
    SR_WRITERS,     /* live writers (+1 with SEM_UNDO: the kernel un-counts the dead) */
    SR_READERS,     /* live readers, likewise */
    SR_ENDED,       /* live writers that have published their END/FINAL */
    SR_NSEMS
};

/* What a creator writes into its new set first, right after semget(IPC_EXCL) and
 * before it makes the segment (Rust: layout::sem::SIGNATURE): "SVSHMRNG" in four
 * 16-bit halves (big-endian pairs: 'S'<<8|'V' ...), then the layout version, then
 * zeros. A set without a segment (or beside a blank one) is the leftover of a
 * creator of ours only if it still holds exactly these values, was never operated
 * on (sem_otime == 0), nobody sleeps on it, and our uid owns it; any other set is
 * not ours and is never removed. All values stay below SEMVMX (32767). */
#define SR_SIGNATURE_INIT                                                                  \
    {                                                                                      \
        ('S' << 8) | 'V', ('S' << 8) | 'H', ('M' << 8) | 'R', ('N' << 8) | 'G', SR_VERSION, \
            0, 0, 0, 0                                                                     \
    }

/* The default key without --key (Rust: key::default_key_for_uid): 'S' (0x53) in the
 * top byte, the low 24 bits of the effective uid (folded) below it. */
#define SR_DEFAULT_KEY_PREFIX 0x53000000u

/* Exit codes, the same as the Rust binaries' (README, "Exit codes"). */
enum {
    SR_EXIT_OK = 0,
    SR_EXIT_OS = 1,        /* any other operating-system or I/O error */
    SR_EXIT_USAGE = 2,     /* bad command line; nothing was created */
    SR_EXIT_CONFLICT = 3,  /* something at the key we must not use or touch */
    SR_EXIT_PEER_GONE = 4, /* the peer died, the stream was cut short, objects removed */
    SR_EXIT_PERMISSION = 5,
    SR_EXIT_CORRUPT = 6,
    SR_EXIT_LIMIT = 7,
    SR_EXIT_INTERRUPTED = 130
};

#define SR_POLL_MS 100        /* every wait gives up after this, to look around */
#define SR_INIT_GRACE_SECS 2  /* a set still at sem_otime == 0 this long is stale */
#define SR_JOIN_PATIENCE_SECS 5 /* joining waits this long for both mutexes, then looks */

/* ---------------------------------------------------------------------------
 * Errors, notes, signals
 * ------------------------------------------------------------------------- */

typedef struct {
    int code;        /* SR_EXIT_* */
    char msg[1024];  /* "key 0x...: ..." (printed after "PROG: error: ") */
    char hint[512];  /* may be empty */
} sr_error;

extern const char *sr_prog; /* "c-writer" / "c-reader": the prefix of every line */
extern int sr_quiet;        /* -q: no notes and no summary (errors still print) */

/* One line "PROG: TEXT\n" on stderr with one write(2), unless quiet. */
void sr_note(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* "PROG: error: MSG" and "PROG: hint: HINT", one write(2) each; returns e->code. */
int sr_report(const sr_error *e);
/* Fills e (and returns -1). */
int sr_fail(sr_error *e, int code, const char *hint, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

/* SIGINT/SIGTERM/SIGHUP set a flag (no SA_RESTART, so a blocked call returns with
 * EINTR); every wait in this library is at most SR_POLL_MS long and looks at it.
 * SIGPIPE is ignored, so a closed output is an I/O error (exit 1), as in Rust. */
int sr_install_signals(sr_error *e);
int sr_cancelled(void);

/* ---------------------------------------------------------------------------
 * Command-line values (the same syntax as the Rust binaries)
 * ------------------------------------------------------------------------- */

/* "0x1234abcd", decimal 1..4294967295, or "path:FILE" (ftok(FILE, 'S')). */
int sr_parse_key(const char *text, key_t *out, sr_error *e);
/* The key used without --key: SR_DEFAULT_KEY_PREFIX | ((uid ^ (uid >> 24)) & 0xffffff)
 * of the effective uid (0x530003e8 for uid 1000). Cannot fail. */
key_t sr_default_key(void);
/* "4096", "64K", "1M" (powers of 1024; G too, if it fits in 32 bits). */
int sr_parse_size(const char *text, uint32_t *out, sr_error *e);
int sr_parse_count(const char *text, uint32_t *out, sr_error *e);
int sr_parse_batch(const char *text, uint32_t *out, sr_error *e); /* 1..=32767 */
int sr_parse_mode(const char *text, unsigned *out, sr_error *e);  /* octal, <= 777, keeps 600 */
/* As many slots as fit in 4 MiB, between 16 and 4096. */
uint32_t sr_default_slots(uint32_t slot_size);
/* 1..=32767 slots, slot size a multiple of 64 in 96..=2^30, total <= kernel.shmmax. */
int sr_check_geometry(uint32_t slots, uint32_t slot_size, sr_error *e);
/* "0x%08x" like ipcs prints keys. */
const char *sr_key_str(key_t key);

/* ---------------------------------------------------------------------------
 * CRC-32C (Castagnoli, reflected, init and xorout 0xFFFFFFFF)
 * ------------------------------------------------------------------------- */

/* Continues the finished CRC `crc` of earlier bytes over `n` more:
 * sr_crc32c(sr_crc32c(0, a), b) == sr_crc32c(0, a ++ b); sr_crc32c(0, "", 0) == 0. */
uint32_t sr_crc32c(uint32_t crc, const void *data, size_t n);

/* ---------------------------------------------------------------------------
 * The session: one process's membership at a key
 * ------------------------------------------------------------------------- */

typedef struct {
    key_t key;
    int shmid, semid;
    unsigned char *base; /* our attach of the segment */
    size_t len;          /* its size, from shmctl(IPC_STAT) */
    uint32_t slots, slot_size;
    int role;            /* SR_ROLE_* */
    uint32_t id;         /* writer id, or the reader's join number */
    int shared, created, joined, ended;
    pid_t pid;
    uid_t owner;         /* SR_LEFT_TO_OWNER: who owns the objects we left */
} sr_session;

typedef struct {
    key_t key;
    int role;
    uint32_t slots, slot_size; /* used only if this writer creates the session */
    unsigned mode;
    int persist, shared;
} sr_open_opts;

/* A consistent-enough picture of the counts: the nine values (GETALL) and the
 * header's counters. */
typedef struct {
    uint16_t sems[SR_NSEMS];
    uint32_t state, writers_joined, readers_joined, writers_finished, readers_finished,
        writers_ended;
} sr_snapshot;

/* How sr_leave ended (Rust: Departure): others remain, or a finished stream waits for
 * its reader (LEFT); we were the last and removed both objects (REMOVED); they were
 * already gone (ALREADY_GONE); we were the last, but another user owns them and only
 * the owner may remove them (LEFT_TO_OWNER, s->owner). */
enum { SR_LEFT = 1, SR_REMOVED = 2, SR_ALREADY_GONE = 3, SR_LEFT_TO_OWNER = 4 };

/* Finds, creates (writers only) or waits for the session at o->key and joins it. */
int sr_open(sr_session *s, const sr_open_opts *o, sr_error *e);
/* writer --remove: our unused objects at key (our stale leftovers too); a finished
 * stream waiting for its reader only with force. 0 nothing there, 1 removed (what). */
int sr_remove_session(key_t key, int force, char *what, size_t cap, sr_error *e);
/* Leaves: un-counts us and, as the last one, removes both objects (except a writer
 * leaving a finished stream that no reader has seen yet). *how = SR_LEFT/... */
int sr_leave(sr_session *s, int finished, int *how, sr_error *e);
/* Leaving after a failure `err` (the process then reports err): a corrupt session is
 * removed (sr_remove_broken); otherwise sr_leave(unfinished), and if the set was
 * removed from outside, the orphaned segment too. Notes say what was done; a
 * failure to leave is only a note. (Rust: stream::leave_after.) */
void sr_leave_after(sr_session *s, const sr_error *err);
int sr_remove_broken(sr_session *s, int *removed, sr_error *e);
int sr_remove_orphaned_segment(sr_session *s, int *removed, sr_error *e);
/* shmdt; the objects stay. */
void sr_detach(sr_session *s);
int sr_snapshot_get(const sr_session *s, sr_snapshot *out, sr_error *e);
/* A snapshot with both mutexes held; *got = 0 if they could not be had in 1 s. */
int sr_locked_snapshot(sr_session *s, sr_snapshot *out, int *got, sr_error *e);
uint32_t sr_header_u32(const sr_session *s, size_t off);
uint64_t sr_header_u64(const sr_session *s, size_t off);
uint32_t sr_lost_writers(const sr_snapshot *n);
uint32_t sr_lost_readers(const sr_snapshot *n);
uint32_t sr_writers_still_sending(const sr_snapshot *n);

/* ---------------------------------------------------------------------------
 * The ring: producer (writer) and consumer (reader)
 * ------------------------------------------------------------------------- */

typedef struct {
    sr_session *s;
    uint64_t seq, bytes;   /* DATA frames and payload bytes we published */
    uint32_t max_batch;
    int have_head;         /* the only writer of a byte stream may remember HEAD */
    uint32_t head;
    int said_waiting, said_stopped;
} sr_producer;

typedef struct {
    const unsigned char *p;
    size_t n;
} sr_span;

void sr_producer_init(sr_producer *p, sr_session *s, uint32_t max_batch);
size_t sr_capacity(const sr_session *s); /* payload bytes per frame: slot_size - 32 */
/* One DATA frame per span (each <= capacity), in order, batched. */
int sr_send(sr_producer *p, const sr_span *frames, size_t n, sr_error *e);
/* Splits data into capacity-sized frames. */
int sr_send_bytes(sr_producer *p, const unsigned char *data, size_t n, sr_error *e);
/* Fills up to `want` slots straight from fd (read(2) into each until it is full or
 * the file ends); *sent = bytes, 0 at EOF. Only for regular files: the write mutex
 * is held across the reads. */
int sr_send_from_fd(sr_producer *p, int fd, uint32_t want, uint64_t *sent, sr_error *e);
/* END, or FINAL if we are the last writer still sending (*was_final). */
int sr_finish(sr_producer *p, int *was_final, sr_error *e);
/* Fails (exit 4) if every reader that came is gone without finishing, unless they
 * took everything (only the FINAL frame left in the ring). */
int sr_check_readers_now(sr_producer *p, sr_snapshot *snap, sr_error *e);

typedef struct {
    uint32_t writer;
    uint64_t seq;
    size_t start, end; /* range in sr_batch.data */
} sr_delivered;

typedef struct {
    sr_delivered *frames;
    size_t nframes, frames_cap;
    unsigned char *data;
    size_t len, cap;
} sr_batch;

typedef struct {
    uint32_t writer;
    uint64_t seq, offset; /* next expected */
} sr_order;

typedef struct {
    sr_session *s;
    uint32_t max_batch;
    int have_tail;
    uint32_t tail;
    sr_order *order; /* per-writer next (seq, offset) */
    size_t norder, order_cap;
    uint64_t frames, bytes;
    uint32_t ended_writers;
    int said_stopped;
    double spin;          /* the longest spin of one wait, seconds (0: never spin) */
    double last_progress; /* when frames last arrived (monotonic; < 0: never) */
    int one_cpu;          /* we may run on one CPU only: spinning yields */
} sr_consumer;

/* The reader's spin (Rust: ring/spin.rs): at most this many microseconds. */
#define SR_MAX_SPIN_US 1000000u
#define SR_DEFAULT_SPIN_US 50u

void sr_consumer_init(sr_consumer *c, sr_session *s, uint32_t max_batch);
/* Spin up to `us` microseconds (clamped to SR_MAX_SPIN_US) watching the header's
 * counters before sleeping in semop, but only while the writer was active; 0: never. */
void sr_consumer_set_spin(sr_consumer *c, uint64_t us);
void sr_consumer_free(sr_consumer *c);
void sr_batch_free(sr_batch *b);
/* Takes up to a batch of frames, validates each, frees their slots. *eos = 1 at
 * FINAL. On -1, b still holds the frames validated before the failure. */
int sr_recv(sr_consumer *c, sr_batch *b, int *eos, sr_error *e);

/* ---------------------------------------------------------------------------
 * Small helpers the two programs share
 * ------------------------------------------------------------------------- */

int sr_process_alive(pid_t pid);
int sr_process_stopped(pid_t pid);
void sr_sleep_ms(int ms);
double sr_now(void); /* monotonic seconds */
/* --delay: sleeps `ms` in steps of at most 100 ms, giving up (exit 130) on Ctrl-C. */
int sr_pause_ms(uint64_t ms, sr_error *e);
/* A decimal 0..=max (an optional '+', as Rust's u64 parser): --delay, --spin. */
int sr_parse_upto(const char *text, uint64_t max, uint64_t *out);
/* Whether standard descriptor fd was closed when the program started: it is not
 * open at all, or it is the /dev/null that Rust's runtime opens read-write in its
 * place (the Rust binaries refuse exactly these). */
int sr_fd_was_closed(int fd);
/* Refuses (exit 1) a standard descriptor that was closed at start: "WHAT is closed
 * (nothing was read or sent): Bad file descriptor (os error 9)". */
int sr_require_open(int fd, const char *what, sr_error *e);
/* The one-line summary (Rust: stream::Summary): "N bytes, M message(s) in S s
 * (R MB/s)" and what became of the objects (`how`, SR_LEFT..., with waits_for_reader
 * for a writer whose finished stream waits in the kernel). */
void sr_summary(uint64_t bytes, uint64_t frames, double secs, int how, int waits_for_reader,
                uid_t owner);

#endif
