/*
 * shmring.c - the protocol of PROTOCOL.md: one segment, one set of nine semaphores.
 *
 * The sections follow the life of a session:
 *   1. notes, errors, signals          5. creating a session (the initialisation race)
 *   2. command-line values and keys    6. finding what is at a key, joining, leaving
 *   3. CRC-32C                         7. sending (the producer)
 *   4. the System V calls, wrapped     8. receiving (the consumer)
 *
 * Where this file had to learn something that PROTOCOL.md does not say, the comment
 * says "(Rust: ...)"; peers/c/README.md lists those points.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE /* semtimedop(2) */
#endif
#include "shmring.h"

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <sched.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ipc.h>
#include <sys/sem.h>
#include <sys/shm.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <time.h>
#include <unistd.h>

/* ===========================================================================
 * 1. Notes, errors, signals
 * ========================================================================= */

const char *sr_prog = "c-shmring";
int sr_quiet = 0;

/* Writes the whole buffer with as few write(2) calls as the kernel allows (one, for
 * any line of ours on stderr), so lines of concurrent processes never interleave. */
static void write_all_fd(int fd, const char *buf, size_t n)
{
    while (n > 0) {
        ssize_t w = write(fd, buf, n);
        if (w < 0) {
            if (errno == EINTR)
                continue;
            return;
        }
        buf += w;
        n -= (size_t)w;
    }
}

static void line_out(const char *kind, const char *text)
{
    char buf[2048];
    int n = snprintf(buf, sizeof buf, "%s: %s%s\n", sr_prog, kind, text);
    if (n < 0)
        return;
    if ((size_t)n >= sizeof buf) {
        n = (int)sizeof buf - 1;
        buf[n - 1] = '\n';
    }
    write_all_fd(2, buf, (size_t)n);
}

void sr_note(const char *fmt, ...)
{
    if (sr_quiet)
        return;
    char text[1536];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(text, sizeof text, fmt, ap);
    va_end(ap);
    line_out("", text);
}

int sr_report(const sr_error *e)
{
    line_out("error: ", e->msg);
    if (e->hint[0])
        line_out("hint: ", e->hint);
    return e->code;
}

int sr_fail(sr_error *e, int code, const char *hint, const char *fmt, ...)
{
    e->code = code;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(e->msg, sizeof e->msg, fmt, ap);
    va_end(ap);
    snprintf(e->hint, sizeof e->hint, "%s", hint ? hint : "");
    return -1;
}

const char *sr_key_str(key_t key)
{
    static char bufs[4][16];
    static int next;
    char *b = bufs[next++ & 3];
    snprintf(b, sizeof bufs[0], "0x%08x", (unsigned)key);
    return b;
}

/* The error kinds of the Rust library, each with its message shape, exit code and
 * hint, so that a user sees the same advice from either peer. */
static int err_usage(sr_error *e, const char *what, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static int err_usage(sr_error *e, const char *what, const char *fmt, ...)
{
    char reason[768];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(reason, sizeof reason, fmt, ap);
    va_end(ap);
    e->code = SR_EXIT_USAGE;
    snprintf(e->msg, sizeof e->msg, "invalid %s: %s", what, reason);
    snprintf(e->hint, sizeof e->hint, "nothing was created; see --help for the accepted %s",
             what);
    return -1;
}

static int err_conflict(sr_error *e, key_t key, const char *remove_cmd, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static int err_conflict(sr_error *e, key_t key, const char *remove_cmd, const char *fmt, ...)
{
    char detail[896];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(detail, sizeof detail, fmt, ap);
    va_end(ap);
    e->code = SR_EXIT_CONFLICT;
    snprintf(e->msg, sizeof e->msg, "key %s: %s", sr_key_str(key), detail);
    if (remove_cmd && remove_cmd[0])
        snprintf(e->hint, sizeof e->hint, "if it is safe to discard, remove it with: %s",
                 remove_cmd);
    else
        snprintf(e->hint, sizeof e->hint,
                 "pick another key with --key, or wait for the session at %s to end",
                 sr_key_str(key));
    return -1;
}

static int err_corrupt(sr_error *e, key_t key, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static int err_corrupt(sr_error *e, key_t key, const char *fmt, ...)
{
    char detail[896];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(detail, sizeof detail, fmt, ap);
    va_end(ap);
    e->code = SR_EXIT_CORRUPT;
    snprintf(e->msg, sizeof e->msg, "corrupt shared memory at key %s: %s", sr_key_str(key),
             detail);
    snprintf(e->hint, sizeof e->hint,
             "something other than our pair wrote to the segment; `make clean KEY=%s` removes "
             "our objects at that key",
             sr_key_str(key));
    return -1;
}

static int err_peer_gone(sr_error *e, key_t key, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static int err_peer_gone(sr_error *e, key_t key, const char *fmt, ...)
{
    char detail[896];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(detail, sizeof detail, fmt, ap);
    va_end(ap);
    e->code = SR_EXIT_PEER_GONE;
    snprintf(e->msg, sizeof e->msg, "key %s: %s", sr_key_str(key), detail);
    snprintf(e->hint, sizeof e->hint,
             "everything delivered before the failure is intact; `ipcs` should show nothing "
             "left at %s (otherwise `make clean KEY=%s`)",
             sr_key_str(key), sr_key_str(key));
    return -1;
}

static int err_interrupted(sr_error *e, const char *detail)
{
    return sr_fail(e, SR_EXIT_INTERRUPTED, NULL, "interrupted (%s)", detail);
}

static int err_limit(sr_error *e, key_t key, const char *call, const char *detail)
{
    return sr_fail(e, SR_EXIT_LIMIT,
                   "see `ipcs -l` for the limits and `ipcs` for what uses them; `make clean` "
                   "removes leftovers of ours",
                   "%s hit a kernel limit for key %s: %s", call, sr_key_str(key), detail);
}

/* A failed system call becomes the error a user can act on (Rust: Error::sys):
 * EACCES/EPERM -> 5, ENOSPC (and ENOMEM from shmget/shmat) -> 7, EIDRM -> 4,
 * anything else -> 1. */
static int err_sys(sr_error *e, key_t key, const char *call, int err)
{
    switch (err) {
    case EACCES:
    case EPERM: {
        char hint[512];
        snprintf(hint, sizeof hint,
                 "the objects at key %s belong to another user or have a narrower mode (see "
                 "`ipcs -m -s -i <id>`); use your own key with --key, or ask the owner to start "
                 "the writer with --mode",
                 sr_key_str(key));
        return sr_fail(e, SR_EXIT_PERMISSION, hint,
                       "permission denied by %s for key %s (owner uid -1)", call,
                       sr_key_str(key));
    }
    case ENOSPC:
        return err_limit(e, key, call,
                         strncmp(call, "shm", 3) == 0
                             ? "the system-wide number of segments (kernel.shmmni) or of shared "
                               "pages (kernel.shmall) is exhausted"
                             : "the system-wide number of semaphore sets or semaphores is "
                               "exhausted (kernel.sem, fields SEMMNI and SEMMNS)");
    case ENOMEM:
        if (strcmp(call, "shmat") == 0 || strcmp(call, "shmget") == 0)
            return err_limit(e, key, call, "not enough memory for the segment");
        break;
    case EIDRM:
        return err_peer_gone(e, key, "the objects were removed while we used them (%s)", call);
    default:
        break;
    }
    char hint[512];
    snprintf(hint, sizeof hint,
             "inspect with `ipcs -m -s` (key %s); `make clean KEY=%s` removes our objects",
             sr_key_str(key), sr_key_str(key));
    return sr_fail(e, SR_EXIT_OS, hint, "%s failed for key %s: %s (os error %d)", call,
                   sr_key_str(key), strerror(err), err);
}

/* --- Signals ---------------------------------------------------------------
 * The handler only sets a flag. It is installed WITHOUT SA_RESTART, so a process
 * asleep in semop/poll/read wakes with EINTR; and no wait below sleeps longer than
 * SR_POLL_MS anyway, so a signal that lands between two checks is seen within
 * 100 ms. Then the process leaves the session like any other departure (the last
 * one out removes the objects) and exits 130. */
static volatile sig_atomic_t cancel_flag = 0;

static void on_signal(int sig)
{
    (void)sig;
    cancel_flag = 1;
}

int sr_install_signals(sr_error *e)
{
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sigemptyset(&sa.sa_mask);
    sa.sa_flags = 0; /* no SA_RESTART: see above */
    int sigs[] = {SIGINT, SIGTERM, SIGHUP};
    for (size_t i = 0; i < sizeof sigs / sizeof sigs[0]; i++)
        if (sigaction(sigs[i], &sa, NULL) != 0)
            return sr_fail(e, SR_EXIT_OS, NULL, "installing the signal handler: %s",
                           strerror(errno));
    /* A reader whose output is closed gets EPIPE (exit 1), not death by SIGPIPE:
     * the Rust runtime ignores SIGPIPE too. */
    signal(SIGPIPE, SIG_IGN);
    return 0;
}

int sr_cancelled(void) { return cancel_flag != 0; }

void sr_sleep_ms(int ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    nanosleep(&ts, NULL); /* a signal cuts it short: fine, the caller looks at the flag */
}

int sr_pause_ms(uint64_t ms, sr_error *e)
{
    double until = sr_now() + (double)ms / 1000.0;
    for (;;) {
        if (sr_cancelled())
            return err_interrupted(e, "during a --delay pause");
        double left = until - sr_now();
        if (left <= 0)
            return 0;
        sr_sleep_ms(left > 0.1 ? SR_POLL_MS : (int)(left * 1000.0) + 1);
    }
}

int sr_fd_was_closed(int fd)
{
    struct stat st;
    if (fstat(fd, &st) != 0)
        return 1; /* not open: EBADF */
    int flags = fcntl(fd, F_GETFL);
    return S_ISCHR(st.st_mode) && major(st.st_rdev) == 1 && minor(st.st_rdev) == 3 &&
           flags >= 0 && (flags & O_ACCMODE) == O_RDWR;
}

int sr_require_open(int fd, const char *what, sr_error *e)
{
    if (!sr_fd_was_closed(fd))
        return 0;
    return sr_fail(e, SR_EXIT_OS, NULL, "%s is closed (nothing was read or sent): %s (os error %d)",
                   what, strerror(EBADF), EBADF);
}

void sr_summary(uint64_t bytes, uint64_t frames, double secs, int how, int waits_for_reader,
                uid_t owner)
{
    double rate = secs > 0 ? (double)bytes / secs / 1e6 : 0.0;
    char tail[160] = "";
    if (how == SR_REMOVED)
        snprintf(tail, sizeof tail, "; removed the segment and semaphore set");
    else if (how == SR_LEFT && waits_for_reader)
        snprintf(tail, sizeof tail, "; the stream waits in the kernel for a reader");
    else if (how == SR_LEFT)
        snprintf(tail, sizeof tail, "; left the objects to the peer that remains");
    else if (how == SR_LEFT_TO_OWNER)
        snprintf(tail, sizeof tail,
                 "; left the objects to their owner (uid %u), who alone may remove them",
                 (unsigned)owner);
    sr_note("%" PRIu64 " bytes, %" PRIu64 " %s in %.3f s (%.1f MB/s)%s", bytes, frames,
            frames == 1 ? "message" : "messages", secs, rate, tail);
}

double sr_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* ===========================================================================
 * 2. Command-line values and keys
 * ========================================================================= */

/* Leading/trailing whitespace is ignored, as Rust's str::trim does (ASCII here). */
static void trimmed(const char *text, char *out, size_t cap)
{
    while (*text && isspace((unsigned char)*text))
        text++;
    size_t n = strlen(text);
    while (n > 0 && isspace((unsigned char)text[n - 1]))
        n--;
    if (n >= cap)
        n = cap - 1;
    memcpy(out, text, n);
    out[n] = '\0';
}

/* An unsigned number in `base` that must fit in `max`: an optional '+', then at least
 * one digit, nothing else (the rules of Rust's u32::from_str_radix). */
static int parse_unsigned(const char *t, int base, uint64_t max, uint64_t *out)
{
    if (*t == '+')
        t++;
    if (*t == '\0')
        return -1;
    uint64_t v = 0;
    for (; *t; t++) {
        int d;
        if (*t >= '0' && *t <= '9')
            d = *t - '0';
        else if (*t >= 'a' && *t <= 'z')
            d = *t - 'a' + 10;
        else if (*t >= 'A' && *t <= 'Z')
            d = *t - 'A' + 10;
        else
            return -1;
        if (d >= base)
            return -1;
        if (v > (max - (uint64_t)d) / (uint64_t)base)
            return -1;
        v = v * (uint64_t)base + (uint64_t)d;
    }
    *out = v;
    return 0;
}

/* ftok(path, 'S'): a key from a file's inode and device number ('S' for "shared
 * memory ring"). Two processes that name the same existing file get the same key. */
static int key_from_path(const char *path, key_t *out, sr_error *e)
{
    errno = 0;
    key_t k = ftok(path, 'S');
    if (k == (key_t)-1) {
        int err = errno;
        return err_usage(e, "key", "ftok(%s) failed: %s (os error %d)", path, strerror(err), err);
    }
    if (k == IPC_PRIVATE)
        return err_usage(e, "key", "0 is IPC_PRIVATE, which other processes cannot find");
    *out = k;
    return 0;
}

int sr_parse_key(const char *text, key_t *out, sr_error *e)
{
    char t[1024];
    trimmed(text, t, sizeof t);
    if (strncmp(t, "path:", 5) == 0)
        return key_from_path(t + 5, out, e);
    uint64_t v;
    if (t[0] == '0' && (t[1] == 'x' || t[1] == 'X')) {
        if (parse_unsigned(t + 2, 16, UINT32_MAX, &v) != 0)
            return err_usage(e, "key", "\"%s\" is not a 32-bit hexadecimal number", t);
    } else if (parse_unsigned(t, 10, UINT32_MAX, &v) != 0) {
        return err_usage(e, "key",
                         "\"%s\" is not a key (use 0x1234abcd, a decimal number from 1 to "
                         "4294967295, or path:FILE)",
                         t);
    }
    /* key 0 is IPC_PRIVATE: shmget(IPC_PRIVATE) always makes a new object that no
     * other process can look up, so a "shared" key 0 would share nothing. */
    if (v == 0)
        return err_usage(e, "key", "0 is IPC_PRIVATE, which other processes cannot find");
    *out = (key_t)(uint32_t)v; /* key_t is a signed int: keys above 0x7fffffff are the same bits */
    return 0;
}

/* The default key (Rust: IpcKey::default_for_user): 0x53 followed by the low 24 bits
 * of the effective uid, so two users of one machine never meet by accident (for
 * uids below 2^24; larger ones are folded into 24 bits and can meet). The classic
 * ftok($HOME, 'S') cannot promise that: it keeps only 16 bits of the inode and 8 of
 * the device number, and two users' homes collided. geteuid(2) cannot fail. */
key_t sr_default_key(void)
{
    uint32_t uid = (uint32_t)geteuid();
    return (key_t)(SR_DEFAULT_KEY_PREFIX | ((uid ^ (uid >> 24)) & 0x00ffffffu));
}

int sr_parse_size(const char *text, uint32_t *out, sr_error *e)
{
    char t[256];
    trimmed(text, t, sizeof t);
    size_t n = strlen(t);
    uint64_t mult = 1;
    if (n > 0) {
        switch (t[n - 1]) {
        case 'k': case 'K': mult = 1u << 10; t[--n] = '\0'; break;
        case 'm': case 'M': mult = 1u << 20; t[--n] = '\0'; break;
        case 'g': case 'G': mult = 1u << 30; t[--n] = '\0'; break;
        default: break;
        }
    }
    uint64_t v;
    char shown[256];
    trimmed(text, shown, sizeof shown);
    if (parse_unsigned(t, 10, UINT64_MAX, &v) != 0 || (v != 0 && mult > UINT64_MAX / v))
        return err_usage(e, "size", "\"%s\" is not a size (e.g. 4096, 64K, 1M)", shown);
    v *= mult;
    if (v > UINT32_MAX)
        return err_usage(e, "size", "%s is larger than 4 GiB", text);
    *out = (uint32_t)v;
    return 0;
}

int sr_parse_upto(const char *text, uint64_t max, uint64_t *out)
{
    return parse_unsigned(text, 10, max, out);
}

int sr_parse_count(const char *text, uint32_t *out, sr_error *e)
{
    char t[256];
    trimmed(text, t, sizeof t);
    uint64_t v;
    if (parse_unsigned(t, 10, UINT32_MAX, &v) != 0)
        return err_usage(e, "count", "\"%s\" is not a whole number from 0 to 4294967295", text);
    *out = (uint32_t)v;
    return 0;
}

int sr_parse_batch(const char *text, uint32_t *out, sr_error *e)
{
    uint32_t n;
    if (sr_parse_count(text, &n, e) != 0)
        return -1;
    if (n < 1 || n > 32767) /* a sem_op is a signed 16-bit number */
        return err_usage(e, "--batch", "%" PRIu32 " is outside 1..=32767", n);
    *out = n;
    return 0;
}

int sr_parse_mode(const char *text, unsigned *out, sr_error *e)
{
    char t[256];
    trimmed(text, t, sizeof t);
    const char *p = t;
    while (strncmp(p, "0o", 2) == 0) /* Rust: trim_start_matches("0o") */
        p += 2;
    uint64_t m;
    if (parse_unsigned(p, 8, UINT32_MAX, &m) != 0)
        return err_usage(e, "mode", "\"%s\" is not an octal mode such as 600 or 660", text);
    /* The owner must keep read and write: a writer that cannot write its own segment
     * could create a session nobody can use. */
    if (m > 0777 || (m & 0600) != 0600)
        return err_usage(e, "mode", "%s must be octal, at most 777, and keep the owner's rw (600)",
                         text);
    *out = (unsigned)m;
    return 0;
}

uint32_t sr_default_slots(uint32_t slot_size)
{
    uint32_t n = SR_DEFAULT_RING_BYTES / (slot_size ? slot_size : 1);
    return n < 16 ? 16 : n > 4096 ? 4096 : n;
}

static uint64_t read_shmmax(void)
{
    FILE *f = fopen("/proc/sys/kernel/shmmax", "r");
    unsigned long long v = 0;
    if (!f)
        return UINT64_MAX;
    if (fscanf(f, "%llu", &v) != 1)
        v = UINT64_MAX;
    fclose(f);
    return v;
}

int sr_check_geometry(uint32_t slots, uint32_t slot_size, sr_error *e)
{
    if (slots == 0 || slots > SR_MAX_SLOTS)
        return err_usage(e, "--slots",
                         "%" PRIu32 " is outside 1..=32767 (semaphore values stop at SEMVMX = 32767)",
                         slots);
    /* (Rust: the lower bound is 32 + 64 = 96, but the size must also be a multiple of 64,
     * so the smallest slot is 128 bytes: 96 of payload.) */
    if (slot_size < SR_MIN_SLOT_SIZE || slot_size > SR_MAX_SLOT_SIZE || slot_size % SR_SLOT_ALIGN)
        return err_usage(e, "--slot-size",
                         "%" PRIu32 " must be a multiple of 64 between 96 and 1073741824 (each "
                         "slot holds a 32-byte frame header and its payload)",
                         slot_size);
    uint64_t total = SR_HEADER_SIZE + (uint64_t)slots * slot_size;
    uint64_t shmmax = read_shmmax();
    if (total > shmmax)
        return err_usage(e, "--slots/--slot-size",
                         "the segment would be %" PRIu64 " bytes, above the kernel's SHMMAX of "
                         "%" PRIu64 " (sysctl kernel.shmmax)",
                         total, shmmax);
    return 0;
}

/* ===========================================================================
 * 3. CRC-32C (Castagnoli): the checksum of every frame
 *
 * Reflected polynomial 0x82F63B78, register initialised to all ones, result
 * inverted. Software: slice-by-8 (eight table lookups per 8 bytes). On x86-64 with
 * SSE 4.2 the CPU's own `crc32` instruction computes the same function ~10x faster;
 * the choice is made once, at run time.
 * ========================================================================= */

static uint32_t crc_table[8][256];
static int crc_ready;

static void crc_init(void)
{
    for (uint32_t i = 0; i < 256; i++) {
        uint32_t c = i;
        for (int k = 0; k < 8; k++)
            c = (c >> 1) ^ (0x82F63B78u & (0u - (c & 1u)));
        crc_table[0][i] = c;
    }
    for (uint32_t i = 0; i < 256; i++)
        for (int t = 1; t < 8; t++)
            crc_table[t][i] = (crc_table[t - 1][i] >> 8) ^ crc_table[0][crc_table[t - 1][i] & 0xff];
    crc_ready = 1;
}

static uint32_t crc_soft(uint32_t c, const unsigned char *p, size_t n)
{
    while (n > 0 && ((uintptr_t)p & 7)) {
        c = (c >> 8) ^ crc_table[0][(c ^ *p++) & 0xff];
        n--;
    }
    while (n >= 8) {
        uint32_t lo, hi;
        memcpy(&lo, p, 4);
        memcpy(&hi, p + 4, 4);
        lo ^= c;
        c = crc_table[7][lo & 0xff] ^ crc_table[6][(lo >> 8) & 0xff] ^
            crc_table[5][(lo >> 16) & 0xff] ^ crc_table[4][lo >> 24] ^
            crc_table[3][hi & 0xff] ^ crc_table[2][(hi >> 8) & 0xff] ^
            crc_table[1][(hi >> 16) & 0xff] ^ crc_table[0][hi >> 24];
        p += 8;
        n -= 8;
    }
    while (n-- > 0)
        c = (c >> 8) ^ crc_table[0][(c ^ *p++) & 0xff];
    return c;
}

#if defined(__x86_64__) && defined(__GNUC__)
#define SR_HAVE_HW_CRC 1
__attribute__((target("sse4.2"))) static uint32_t crc_hw(uint32_t c, const unsigned char *p,
                                                         size_t n)
{
    while (n > 0 && ((uintptr_t)p & 7)) {
        c = __builtin_ia32_crc32qi(c, *p++);
        n--;
    }
    uint64_t c64 = c;
    while (n >= 8) {
        uint64_t v;
        memcpy(&v, p, 8);
        c64 = __builtin_ia32_crc32di(c64, v);
        p += 8;
        n -= 8;
    }
    c = (uint32_t)c64;
    while (n-- > 0)
        c = __builtin_ia32_crc32qi(c, *p++);
    return c;
}
static int hw_crc = -1;
#endif

uint32_t sr_crc32c(uint32_t crc, const void *data, size_t n)
{
    uint32_t c = ~crc; /* continue from the register, not from the finished value */
#ifdef SR_HAVE_HW_CRC
    if (hw_crc < 0)
        hw_crc = __builtin_cpu_supports("sse4.2") ? 1 : 0;
    if (hw_crc)
        return ~crc_hw(c, data, n);
#endif
    if (!crc_ready)
        crc_init();
    return ~crc_soft(c, data, n);
}

/* ===========================================================================
 * 4. The System V calls, wrapped
 *
 * A semaphore set is an array of kernel counters. semop(2) applies a LIST of
 * operations atomically: all of them, or (if one would make a value negative) none,
 * sleeping until all can be applied. That one property carries the whole protocol:
 * "take k slots AND the mutex", "publish k frames AND move HEAD AND release the
 * mutex" are each one indivisible step, so a process killed at any instant leaves
 * the old state or the new one, never a mix.
 *
 * Two kinds of semop here: the ones that TAKE (slots, frames, mutexes) wait, in
 * 100 ms semtimedop steps or not at all (IPC_NOWAIT); the ones that GIVE BACK
 * (release, publish, the creator's opening semop) can never have to wait in a
 * consistent session, so version 3 sends them with IPC_NOWAIT and treats EAGAIN as
 * proof that someone changed the counts from outside (sem_apply_now): no step ever
 * sleeps while it holds a mutex.
 * ========================================================================= */

/* Linux makes the caller define the fourth argument of semctl(2). */
union semun {
    int val;
    struct semid_ds *buf;
    unsigned short *array;
};

enum { WAIT_POLL, WAIT_NOWAIT };

/* A semctl on a set id failed: EINVAL/EIDRM mean the id is gone (removed meanwhile),
 * which is "peer gone" (exit 4); anything else is err_sys. (Rust: gone_or.) */
static int set_call_failed(sr_error *e, key_t key, const char *call, int err)
{
    if (err == EINVAL || err == EIDRM)
        return err_peer_gone(e, key, "the semaphore set was removed (%s)", call);
    return err_sys(e, key, call, err);
}

/* Applies ops atomically. WAIT_POLL: semtimedop with a 100 ms timeout (a wait that
 * gives up to look around: Ctrl-C, dead peers). WAIT_NOWAIT: IPC_NOWAIT on every
 * operation, so the call never sleeps. Returns 1 when applied, 0 when not (timeout,
 * would block, or a signal), -1 on error: the set removed under us is "peer gone"
 * (exit 4), ERANGE (a value would pass SEMVMX) is corruption (exit 6). */
static int sem_apply(const sr_session *s, struct sembuf *ops, size_t n, int how, sr_error *e)
{
    if (how == WAIT_NOWAIT)
        for (size_t i = 0; i < n; i++)
            ops[i].sem_flg |= IPC_NOWAIT;
    int r;
    if (how == WAIT_POLL) {
        struct timespec ts = {0, SR_POLL_MS * 1000000L};
        r = semtimedop(s->semid, ops, n, &ts);
    } else {
        r = semop(s->semid, ops, n);
    }
    if (r == 0)
        return 1;
    int err = errno;
    const char *call = how == WAIT_POLL ? "semtimedop" : "semop";
    if (err == EAGAIN || err == EINTR)
        return 0;
    if (err == EINVAL || err == EIDRM)
        return err_peer_gone(e, s->key, "the semaphore set was removed while we waited (%s)",
                             call);
    if (err == ERANGE)
        return err_corrupt(e, s->key,
                           "a semaphore would exceed SEMVMX (32767): the counts are inconsistent");
    return err_sys(e, s->key, call, err);
}

/* Applies ops that can never have to wait in a consistent session: they only add,
 * take back what they added in the same call, or give back what this process itself
 * holds (publish, free, release the mutexes, the creator's opening semop). Version 3
 * sends them with IPC_NOWAIT: if one would have to wait after all, someone changed
 * the counts from outside, and sleeping while we hold a mutex would hang every peer,
 * so that is corruption (exit 6), named by `why`. (Rust: SemaphoreSet::apply_now.)
 * Returns 0 or -1. */
static int sem_apply_now(const sr_session *s, struct sembuf *ops, size_t n, const char *why,
                         sr_error *e)
{
    int r = sem_apply(s, ops, n, WAIT_NOWAIT, e);
    if (r < 0)
        return -1;
    if (r == 0)
        return err_corrupt(e, s->key,
                           "the semaphore counts were changed from outside: a step that never "
                           "waits would have had to (%s)",
                           why);
    return 0;
}

/* One sembuf. SEM_UNDO asks the kernel to remember the opposite of this operation
 * and apply it when the process exits, however it exits (kill -9 included). */
static struct sembuf op(int member, int delta, int undo)
{
    struct sembuf b;
    b.sem_num = (unsigned short)member;
    b.sem_op = (short)delta;
    b.sem_flg = undo ? SEM_UNDO : 0;
    return b;
}

/* semctl(GETALL): all nine values of set `semid` in one consistent snapshot. */
static int set_values(key_t key, int semid, uint16_t v[SR_NSEMS], sr_error *e)
{
    unsigned short a[SR_NSEMS];
    union semun arg;
    arg.array = a;
    if (semctl(semid, 0, GETALL, arg) < 0)
        return set_call_failed(e, key, "semctl(GETALL)", errno);
    for (int i = 0; i < SR_NSEMS; i++)
        v[i] = a[i];
    return 0;
}

static int sem_values(const sr_session *s, uint16_t v[SR_NSEMS], sr_error *e)
{
    return set_values(s->key, s->semid, v, e);
}

/* semctl(SETALL): every member at once. The creator's two initialisation steps
 * (the signature, then the initial values). */
static int set_all(key_t key, int semid, const unsigned short v[SR_NSEMS], sr_error *e)
{
    unsigned short a[SR_NSEMS];
    memcpy(a, v, sizeof a);
    union semun arg;
    arg.array = a;
    if (semctl(semid, 0, SETALL, arg) < 0)
        return set_call_failed(e, key, "semctl(SETALL)", errno);
    return 0;
}

/* semctl(member, GETVAL / GETNCNT / GETZCNT): one member's value, or how many
 * processes sleep in semop waiting to take from it (NCNT) or for it to be 0 (ZCNT). */
static int set_query(key_t key, int semid, int member, int cmd, const char *call, int *out,
                     sr_error *e)
{
    int v = semctl(semid, member, cmd);
    if (v < 0)
        return set_call_failed(e, key, call, errno);
    *out = v;
    return 0;
}

/* semctl(GETVAL) of one member (HEAD or TAIL: where our batch starts). */
static int sem_getval(const sr_session *s, int member, uint32_t *out, sr_error *e)
{
    int v = 0;
    if (set_query(s->key, s->semid, member, GETVAL, "semctl(GETVAL)", &v, e) < 0)
        return -1;
    *out = (uint32_t)v;
    return 0;
}

/* semctl(IPC_RMID) removes a set at once: every process asleep in semop on it
 * wakes with EIDRM. shmctl(IPC_RMID) only marks a segment: its key is freed at once
 * (a new shmget(key) finds nothing) and the memory when the last process detaches.
 * Returns 1 removed, 0 if someone else removed it first (EINVAL/EIDRM: fine), -1. */
static int remove_set(key_t key, int semid, sr_error *e)
{
    if (semctl(semid, 0, IPC_RMID) == 0)
        return 1;
    if (errno == EINVAL || errno == EIDRM)
        return 0;
    return err_sys(e, key, "semctl(IPC_RMID)", errno);
}

static int remove_segment(key_t key, int shmid, sr_error *e)
{
    if (shmctl(shmid, IPC_RMID, NULL) == 0)
        return 1;
    if (errno == EINVAL || errno == EIDRM)
        return 0;
    return err_sys(e, key, "shmctl(IPC_RMID)", errno);
}

/* shmget(key, 0, 0) / semget(key, 0, 0): look up the id at a key without creating
 * anything. ENOENT: nothing there (*id = -1). With flags 0 the kernel asks for no
 * permission, so this finds another user's objects too; IPC_STAT then needs read
 * permission (EACCES -> exit 5). */
static int find_segment(key_t key, int *id, sr_error *e)
{
    *id = shmget(key, 0, 0);
    if (*id < 0) {
        if (errno == ENOENT) {
            *id = -1;
            return 0;
        }
        return err_sys(e, key, "shmget", errno);
    }
    return 0;
}

static int find_set(key_t key, int *id, sr_error *e)
{
    *id = semget(key, 0, 0);
    if (*id < 0) {
        if (errno == ENOENT) {
            *id = -1;
            return 0;
        }
        return err_sys(e, key, "semget", errno);
    }
    return 0;
}

/* semctl(IPC_STAT) / shmctl(IPC_STAT): the kernel's record of an object. What we
 * use of it: the owner's uid and the mode (is it ours to use?), the set's member
 * count (9, or it is not ours), sem_otime (0 until the creator's first semop: the
 * initialisation handshake), sem_ctime / shm_ctime (how long ago it was made, for
 * the grace), shm_segsz (how much we may map) and shm_nattch (is anyone attached?).
 * Returns 1 if the object vanished meanwhile (EINVAL/EIDRM). */
static int set_stat(key_t key, int semid, struct semid_ds *ds, sr_error *e)
{
    union semun arg;
    arg.buf = ds;
    if (semctl(semid, 0, IPC_STAT, arg) < 0) {
        if (errno == EINVAL || errno == EIDRM)
            return 1;
        return err_sys(e, key, "semctl(IPC_STAT)", errno);
    }
    return 0;
}

static int seg_stat(key_t key, int shmid, struct shmid_ds *ds, sr_error *e)
{
    if (shmctl(shmid, IPC_STAT, ds) < 0) {
        if (errno == EINVAL || errno == EIDRM)
            return 1;
        return err_sys(e, key, "shmctl(IPC_STAT)", errno);
    }
    return 0;
}

/* shmat(id, NULL, 0): map the segment into our address space, wherever the kernel
 * likes (NULL); from now on our loads and stores ARE the other processes' memory.
 * The length we may touch is the kernel's own record of the size, never the header.
 * Returns 1 if the segment vanished meanwhile. */
static int attach(key_t key, int shmid, unsigned char **base, size_t *len, sr_error *e)
{
    struct shmid_ds ds;
    int r = seg_stat(key, shmid, &ds, e);
    if (r != 0)
        return r;
    void *p = shmat(shmid, NULL, 0);
    if (p == (void *)-1) {
        if (errno == EINVAL || errno == EIDRM)
            return 1;
        if (errno == EACCES) {
            char hint[512];
            snprintf(hint, sizeof hint,
                     "the objects at key %s belong to another user or have a narrower mode "
                     "(see `ipcs -m -s -i <id>`); use your own key with --key, or ask the owner "
                     "to start the writer with --mode",
                     sr_key_str(key));
            return sr_fail(e, SR_EXIT_PERMISSION, hint,
                           "permission denied by shmat for key %s (owner uid %u)", sr_key_str(key),
                           (unsigned)ds.shm_perm.uid);
        }
        return err_sys(e, key, "shmat", errno);
    }
    *base = p;
    *len = ds.shm_segsz;
    return 0;
}

/* --- Header fields ---------------------------------------------------------
 * Both sides (and the inspector) read the counters at any time, so every access is
 * an atomic instruction; the mutex named in PROTOCOL.md's table makes the values
 * consistent, and the semop between a writer and a reader is a full barrier. */
static _Atomic uint32_t *a32(const sr_session *s, size_t off)
{
    return (_Atomic uint32_t *)(void *)(s->base + off);
}
static _Atomic uint64_t *a64(const sr_session *s, size_t off)
{
    return (_Atomic uint64_t *)(void *)(s->base + off);
}
uint32_t sr_header_u32(const sr_session *s, size_t off)
{
    return atomic_load_explicit(a32(s, off), memory_order_acquire);
}
uint64_t sr_header_u64(const sr_session *s, size_t off)
{
    return atomic_load_explicit(a64(s, off), memory_order_relaxed);
}
static void put32(const sr_session *s, size_t off, uint32_t v)
{
    atomic_store_explicit(a32(s, off), v, memory_order_relaxed);
}
static void add32(const sr_session *s, size_t off, uint32_t v)
{
    atomic_fetch_add_explicit(a32(s, off), v, memory_order_relaxed);
}
static void add64(const sr_session *s, size_t off, uint64_t v)
{
    atomic_fetch_add_explicit(a64(s, off), v, memory_order_relaxed);
}

int sr_snapshot_get(const sr_session *s, sr_snapshot *n, sr_error *e)
{
    if (sem_values(s, n->sems, e) < 0)
        return -1;
    n->state = sr_header_u32(s, SR_OFF_STATE);
    n->writers_joined = sr_header_u32(s, SR_OFF_WRITERS_JOINED);
    n->readers_joined = sr_header_u32(s, SR_OFF_READERS_JOINED);
    n->writers_finished = sr_header_u32(s, SR_OFF_WRITERS_FINISHED);
    n->readers_finished = sr_header_u32(s, SR_OFF_READERS_FINISHED);
    n->writers_ended = sr_header_u32(s, SR_OFF_WRITERS_ENDED);
    return 0;
}

static uint32_t sub0(uint32_t a, uint32_t b) { return a > b ? a - b : 0; }

/* Live writers that have not sent END/FINAL yet: WRITERS - ENDED, both kept by the
 * kernel (SEM_UNDO), so a writer that dies after its END leaves no trace. */
uint32_t sr_writers_still_sending(const sr_snapshot *n)
{
    return sub0(n->sems[SR_WRITERS], n->sems[SR_ENDED]);
}
/* Writers gone without their END: joined - ended - still sending. */
uint32_t sr_lost_writers(const sr_snapshot *n)
{
    return sub0(sub0(n->writers_joined, n->writers_ended), sr_writers_still_sending(n));
}
/* Readers that joined and left without reading to FINAL. */
uint32_t sr_lost_readers(const sr_snapshot *n)
{
    return sub0(n->readers_joined, n->readers_finished + n->sems[SR_READERS]);
}

/* --- Liveness -------------------------------------------------------------- */

/* kill(pid, 0) sends nothing and says whether the process exists (EPERM: it exists
 * but belongs to someone else). The peer table is informational; liveness of a
 * ROLE is decided by the WRITERS/READERS semaphores, which the kernel corrects. */
int sr_process_alive(pid_t pid)
{
    return kill(pid, 0) == 0 || errno == EPERM;
}

/* Stopped (SIGSTOP, Ctrl-Z, a debugger): state T or t in /proc/PID/stat. */
int sr_process_stopped(pid_t pid)
{
    char path[64], buf[512];
    snprintf(path, sizeof path, "/proc/%d/stat", (int)pid);
    int fd = open(path, O_RDONLY);
    if (fd < 0)
        return 0;
    ssize_t n = read(fd, buf, sizeof buf - 1);
    close(fd);
    if (n <= 0)
        return 0;
    buf[n] = '\0';
    char *p = strrchr(buf, ')'); /* the command name may contain spaces and ')' */
    if (!p)
        return 0;
    p++;
    while (*p == ' ')
        p++;
    return *p == 'T' || *p == 't';
}

static size_t peer_base(int i) { return SR_OFF_PEERS + (size_t)i * SR_PEER_ENTRY; }

/* Live, stopped peers of a role, as "[pid, pid]" (the Rust notes' format). */
static int stopped_peers(const sr_session *s, uint32_t role, char *out, size_t cap)
{
    int found = 0;
    size_t used = (size_t)snprintf(out, cap, "[");
    for (int i = 0; i < SR_MAX_PEERS; i++) {
        pid_t pid = (pid_t)sr_header_u32(s, peer_base(i));
        uint32_t r = sr_header_u32(s, peer_base(i) + 4);
        if (pid > 0 && pid != s->pid && r == role && sr_process_alive(pid) &&
            sr_process_stopped(pid)) {
            if (used < cap)
                used += (size_t)snprintf(out + used, cap - used, "%s%d", found ? ", " : "",
                                         (int)pid);
            found++;
        }
    }
    if (used < cap)
        snprintf(out + used, cap - used, "]");
    return found;
}

static int live_peer_pids(const sr_session *s, uint32_t role, char *out, size_t cap)
{
    int found = 0;
    size_t used = 0;
    out[0] = '\0';
    for (int i = 0; i < SR_MAX_PEERS; i++) {
        pid_t pid = (pid_t)sr_header_u32(s, peer_base(i));
        uint32_t r = sr_header_u32(s, peer_base(i) + 4);
        if (pid > 0 && pid != s->pid && r == role && sr_process_alive(pid)) {
            if (used < cap)
                used += (size_t)snprintf(out + used, cap - used, "%s%d", found ? ", " : "",
                                         (int)pid);
            found++;
        }
    }
    return found;
}

/* Our entry in the peer table: an empty one, or one whose process is gone. Called
 * with both mutexes held (or by the creator, before anyone else can look). */
static int set_peer(sr_session *s, uint32_t role, uint32_t id, sr_error *e)
{
    for (int i = 0; i < SR_MAX_PEERS; i++) {
        pid_t p = (pid_t)sr_header_u32(s, peer_base(i));
        if (p == 0 || !sr_process_alive(p)) {
            put32(s, peer_base(i), (uint32_t)s->pid);
            put32(s, peer_base(i) + 4, role);
            put32(s, peer_base(i) + 8, id);
            return 0;
        }
    }
    return err_conflict(e, s->key, NULL,
                        "the session already has %d live peers, the most it can list",
                        SR_MAX_PEERS);
}

static void clear_peer(sr_session *s)
{
    for (int i = 0; i < SR_MAX_PEERS; i++)
        if ((pid_t)sr_header_u32(s, peer_base(i)) == s->pid) {
            put32(s, peer_base(i), 0);
            put32(s, peer_base(i) + 4, 0);
            put32(s, peer_base(i) + 8, 0);
        }
}

/* "ipcrm -m SHMID -s SEMID", for the objects that exist (-1: absent). */
static const char *ipcrm_cmd(int shmid, int semid)
{
    static char buf[2][96];
    static int next;
    char *b = buf[next++ & 1];
    b[0] = '\0';
    if (shmid < 0 && semid < 0)
        return b;
    size_t n = (size_t)snprintf(b, sizeof buf[0], "ipcrm");
    if (shmid >= 0)
        n += (size_t)snprintf(b + n, sizeof buf[0] - n, " -m %d", shmid);
    if (semid >= 0)
        snprintf(b + n, sizeof buf[0] - n, " -s %d", semid);
    return b;
}

/* ===========================================================================
 * 5. Creating a session, and the initialisation race
 *
 * The handout's `shmget(key, size, IPC_CREAT | 0666)` lets two processes both
 * "create" and one of them use memory the other has not set up yet; a semaphore set
 * made with IPC_CREAT and then initialised with semctl(SETALL) has the same gap
 * between its two calls. The cure (Stevens, UNP vol. 2, section 11.2):
 *   - create with IPC_EXCL, so exactly one process is the creator;
 *   - that process sets everything up, and only THEN performs its first semop;
 *   - everyone else waits until the set's sem_otime (time of the last semop) is
 *     non-zero before touching it. A set still at sem_otime == 0 a couple of seconds
 *     after its creation belongs to a creator that died half way: it is stale.
 * ========================================================================= */

static void detach_base(unsigned char *base)
{
    if (base)
        shmdt(base); /* unmap; the segment stays in the kernel until removed */
}

/* Removes both objects: the set first (it wakes every sleeper with EIDRM, so nobody
 * goes on using a segment that is about to go), then the segment. */
static int remove_objects(sr_session *s, sr_error *e)
{
    if (remove_set(s->key, s->semid, e) < 0)
        return -1;
    if (remove_segment(s->key, s->shmid, e) < 0)
        return -1;
    s->joined = 0;
    return 0;
}

/* The header a creator writes (PROTOCOL.md 2.1). The segment starts zero-filled, so
 * only the non-zero fields are stored; the magic goes last, with release ordering:
 * whoever sees the magic sees the rest. (Rust: the creator also counts itself as
 * the first writer that joined, takes writer id 1 (next id 2), enters itself in the
 * peer table and sets the state to open - all before the magic.) */
static void write_header(sr_session *s, const sr_open_opts *o)
{
    put32(s, SR_OFF_VERSION, SR_VERSION);
    put32(s, SR_OFF_HEADER_SIZE, SR_HEADER_SIZE);
    put32(s, SR_OFF_SLOT_COUNT, s->slots);
    put32(s, SR_OFF_SLOT_SIZE, s->slot_size);
    atomic_store_explicit(a64(s, SR_OFF_SEGMENT_SIZE),
                          SR_HEADER_SIZE + (uint64_t)s->slots * s->slot_size,
                          memory_order_relaxed);
    put32(s, SR_OFF_FLAGS, (o->persist ? SR_FLAG_PERSIST : 0) | (o->shared ? SR_FLAG_SHARED : 0));
    put32(s, SR_OFF_CREATOR_PID, (uint32_t)s->pid);
    put32(s, SR_OFF_NEXT_WRITER_ID, 2);
    put32(s, SR_OFF_WRITERS_JOINED, 1);
    sr_error ignored;
    (void)set_peer(s, SR_ROLE_WRITER, 1, &ignored); /* the table is empty: cannot fail */
    put32(s, SR_OFF_STATE, SR_STATE_OPEN);
    atomic_store_explicit(a64(s, SR_OFF_MAGIC), SR_MAGIC, memory_order_release);
}

/* Tries to create a fresh session. Returns 1 created (and joined), 0 something is
 * already at the key (look at it), -1 error (nothing of ours left behind). */
static int create_session(sr_session *s, const sr_open_opts *o, sr_error *e)
{
    key_t key = o->key;
    size_t size = SR_HEADER_SIZE + (size_t)o->slots * o->slot_size;

    /* Step 1: the semaphore set. IPC_CREAT|IPC_EXCL: if anything exists at the key,
     * EEXIST, and we are not the creator. Its nine values are 0 now (Linux), and
     * its sem_otime is 0: nobody will touch it until our first semop (step 5). */
    int semid = semget(key, SR_NSEMS, IPC_CREAT | IPC_EXCL | (int)(o->mode & 0777));
    if (semid < 0) {
        if (errno == EEXIST)
            return 0;
        if (errno == EINVAL)
            return err_limit(e, key, "semget",
                             "9 semaphores per set exceeds SEMMSL (sysctl kernel.sem, first field)");
        return err_sys(e, key, "semget", errno);
    }

    /* Step 1b (version 3): mark the new set as ours at once, with semctl(SETALL) of
     * the signature, before anything else. If we die before the segment exists, these
     * values (and sem_otime still 0) are what lets the next writer recognise the lone
     * set as our leftover; a set without them is never removed (inspect). SETALL
     * changes no sem_otime, so the set still reads "not initialised". */
    static const unsigned short signature[SR_NSEMS] = SR_SIGNATURE_INIT;
    if (set_all(key, semid, signature, e) < 0) {
        sr_error ignored;
        (void)remove_set(key, semid, &ignored);
        return -1;
    }

    /* Step 2: the segment, also exclusive. From here on, every failure removes what
     * we made: nothing half-made stays behind. */
    int shmid = shmget(key, size, IPC_CREAT | IPC_EXCL | (int)(o->mode & 0777));
    if (shmid < 0) {
        int err = errno;
        sr_error ignored;
        if (err == EEXIST) {
            /* A segment without a set: someone else's, or a crash's leftover. Give our
             * set back and let the inspection decide what it is. */
            if (remove_set(key, semid, e) < 0)
                return -1;
            return 0;
        }
        (void)remove_set(key, semid, &ignored);
        if (err == EINVAL) {
            char d[256];
            snprintf(d, sizeof d,
                     "a segment of %zu bytes is outside the kernel's SHMMIN..SHMMAX (sysctl "
                     "kernel.shmmax)",
                     size);
            return err_limit(e, key, "shmget", d);
        }
        return err_sys(e, key, "shmget", err);
    }
    unsigned char *base = NULL;
    size_t len = 0;
    int r = attach(key, shmid, &base, &len, e);
    if (r != 0) {
        sr_error ignored;
        if (r > 0)
            err_peer_gone(e, key, "the segment we had just created vanished");
        (void)remove_segment(key, shmid, &ignored);
        (void)remove_set(key, semid, &ignored);
        return -1;
    }
    memset(s, 0, sizeof *s);
    s->key = key;
    s->shmid = shmid;
    s->semid = semid;
    s->base = base;
    s->len = len;
    s->slots = o->slots;
    s->slot_size = o->slot_size;
    s->role = SR_ROLE_WRITER;
    s->id = 1;
    s->shared = o->shared;
    s->created = 1;
    s->pid = getpid();

    /* Step 3: the header, magic last. sem_otime is still 0, so nobody reads it yet. */
    write_header(s, o);

    /* Step 4: every initial value at once, over the signature. Both mutexes stay
     * CLOSED (0) until step 5 opens them; FREE = every slot; HEAD = TAIL = 0; nobody
     * counted yet. */
    unsigned short v[SR_NSEMS] = {0};
    v[SR_FREE] = (unsigned short)o->slots;
    if (set_all(key, semid, v, e) < 0)
        goto undo;

    /* Step 5: the first semop. It opens both mutexes and counts us as a live writer
     * (SEM_UNDO: if we die, the kernel takes the count back). Being the first
     * successful semop, it is what makes sem_otime non-zero: the "ready" signal.
     * It only adds, so it never has to wait: IPC_NOWAIT (sem_apply_now). */
    struct sembuf ops[3] = {op(SR_WRITE_MUTEX, +1, 0), op(SR_READ_MUTEX, +1, 0),
                            op(SR_WRITERS, +1, 1)};
    if (sem_apply_now(s, ops, 3,
                      "open the mutexes and count ourselves as a writer: sets sem_otime, the "
                      "'ready' signal",
                      e) < 0)
        goto undo;
    s->joined = 1;
    return 1;

undo: {
    sr_error ignored;
    (void)remove_objects(s, &ignored);
    detach_base(s->base);
    s->base = NULL;
    return -1;
}
}

/* ===========================================================================
 * 6. Finding what is at a key, joining, leaving
 * ========================================================================= */

enum { FOUND_NOTHING, FOUND_OURS, FOUND_INITIALISING, FOUND_STALE };

typedef struct {
    int what;
    int shmid, semid; /* -1: absent */
    unsigned char *base;
    size_t len;
    char why[192]; /* FOUND_STALE: why it is stale; FOUND_INITIALISING: what is there */
} found_t;

/* An object owned by another user is ours to use only if its mode lets everyone read
 * and write it (the owner widened it with --mode on purpose). */
static int foreign_owner(uid_t uid, unsigned mode)
{
    return uid != geteuid() && (mode & 0006) != 0006;
}

static long age_secs(time_t t)
{
    time_t now = time(NULL);
    return now > t ? (long)(now - t) : 0;
}

static void owner_of(key_t key, int shmid, char *out, size_t cap)
{
    struct shmid_ds ds;
    sr_error ignored;
    if (seg_stat(key, shmid, &ds, &ignored) == 0)
        snprintf(out, cap, "owner uid %u", (unsigned)ds.shm_perm.uid);
    else
        snprintf(out, cap, "owner unknown");
}

/* Checks the header of an attached segment of ours and reads the geometry; every
 * field is read once. Foreign (exit 3): too small, wrong magic, other version.
 * Corrupt (exit 6): our magic and version, but impossible values. */
static int validate_header(key_t key, int shmid, const unsigned char *base, size_t len,
                           uint32_t *slots, uint32_t *slot_size, sr_error *e)
{
    /* The owner is looked up only when there is something to refuse. */
    char owner[48] = "";
#define OWNER() (owner_of(key, shmid, owner, sizeof owner), owner)
    if (len < SR_HEADER_SIZE)
        return err_conflict(e, key, ipcrm_cmd(shmid, -1),
                            "the segment there (shmid %d) is %zu bytes, smaller than our header: "
                            "it is not ours (%s)",
                            shmid, len, OWNER());
    sr_session tmp = {.base = (unsigned char *)base};
    uint64_t magic = atomic_load_explicit(a64(&tmp, SR_OFF_MAGIC), memory_order_acquire);
    if (magic != SR_MAGIC)
        return err_conflict(e, key, ipcrm_cmd(shmid, -1),
                            "the segment there (shmid %d) does not start with our magic: it is "
                            "not ours (%s)",
                            shmid, OWNER());
    uint32_t version = sr_header_u32(&tmp, SR_OFF_VERSION);
    if (version != SR_VERSION)
        return err_conflict(e, key, ipcrm_cmd(shmid, -1),
                            "the segment there (shmid %d) has layout version %u; this build "
                            "speaks version %u (%s)",
                            shmid, version, SR_VERSION, OWNER());
#undef OWNER
    uint32_t header = sr_header_u32(&tmp, SR_OFF_HEADER_SIZE);
    uint32_t n = sr_header_u32(&tmp, SR_OFF_SLOT_COUNT);
    uint32_t size = sr_header_u32(&tmp, SR_OFF_SLOT_SIZE);
    if (header != SR_HEADER_SIZE)
        return err_corrupt(e, key, "header size field is %u, expected %u", header, SR_HEADER_SIZE);
    sr_error g;
    if (sr_check_geometry(n, size, &g) < 0)
        return err_corrupt(e, key, "bad geometry in header: %s", g.msg);
    uint64_t need = SR_HEADER_SIZE + (uint64_t)n * size;
    if (need > len)
        return err_corrupt(e, key,
                           "the header claims %" PRIu64 " bytes (%u slots of %u) but the segment "
                           "has %zu",
                           need, n, size, len);
    *slots = n;
    *slot_size = size;
    return 0;
}

/* How many processes sleep in semop on set `semid`: every member's semctl(GETNCNT)
 * (waiting to take) and semctl(GETZCNT) (waiting for zero). A set someone waits on is
 * in use, whatever else it looks like: it is never removed. */
static int waiters(key_t key, int semid, int *n, sr_error *e)
{
    *n = 0;
    for (int m = 0; m < SR_NSEMS; m++) {
        int c = 0, z = 0;
        if (set_query(key, semid, m, GETNCNT, "semctl(GETNCNT)", &c, e) < 0 ||
            set_query(key, semid, m, GETZCNT, "semctl(GETZCNT)", &z, e) < 0)
            return -1;
        *n += (c > 0 ? c : 0) + (z > 0 ? z : 0);
    }
    return 0;
}

/* Whether set `semid` holds exactly our creator's signature (semctl(GETALL) against
 * SR_SIGNATURE), was never operated on (sem_otime == 0: no semop ever succeeded on
 * it), has our nine members, and nobody sleeps on it. Only such a set can be the
 * leftover of a creator of ours that died between its semget and its first semop.
 * *yes = 1 or 0; returns 0 or -1. (Rust: discover::signed_and_unused.) */
static int signed_and_unused(key_t key, int semid, const struct semid_ds *sds, int *yes,
                             sr_error *e)
{
    static const unsigned short signature[SR_NSEMS] = SR_SIGNATURE_INIT;
    *yes = 0;
    if (sds->sem_otime != 0 || sds->sem_nsems != SR_NSEMS)
        return 0;
    uint16_t v[SR_NSEMS];
    if (set_values(key, semid, v, e) < 0)
        return -1;
    for (int i = 0; i < SR_NSEMS; i++)
        if (v[i] != signature[i])
            return 0;
    int n;
    if (waiters(key, semid, &n, e) < 0)
        return -1;
    *yes = n == 0;
    return 0;
}

static int initialising(found_t *f, const char *what)
{
    f->what = FOUND_INITIALISING;
    snprintf(f->why, sizeof f->why, "%s", what);
    return 0;
}

static int stale(found_t *f, int shmid, int semid, const char *why)
{
    f->what = FOUND_STALE;
    f->shmid = shmid;
    f->semid = semid;
    snprintf(f->why, sizeof f->why, "%s", why);
    return 0;
}

/* A semaphore set with no segment beside it. Version 3: ours only if it carries our
 * creator's signature, was never operated on, nobody waits on it, and our uid owns
 * it; then it is a creator at work (younger than the grace: wait) or its leftover
 * (stale). Anything else is not ours: exit 3, and it is never touched.
 * (Rust: discover::lone_set.) */
static int lone_set(key_t key, int semid, const struct semid_ds *sds, found_t *f, sr_error *e)
{
    const char *why = NULL;
    int yes = 0;
    if (sds->sem_otime != 0) {
        why = "it has been used, so it is no creator of ours at work";
    } else if (age_secs(sds->sem_ctime) < SR_INIT_GRACE_SECS) {
        /* A creator of ours is between semget, the signature SETALL and shmget for
         * microseconds (SETALL sets sem_ctime, so the age counts from the mark). */
        return initialising(f, "a set its creator has not opened yet");
    } else {
        if (signed_and_unused(key, semid, sds, &yes, e) < 0)
            return -1;
        if (!yes)
            why = "it does not carry our creator's signature";
        else if (sds->sem_perm.uid != geteuid())
            why = "another user's";
    }
    if (why)
        return err_conflict(e, key, ipcrm_cmd(-1, semid),
                            "a semaphore set that is not ours is there (semid %d, owner uid %u, "
                            "%lu members, mode %o, no segment beside it: %s)",
                            semid, (unsigned)sds->sem_perm.uid, (unsigned long)sds->sem_nsems,
                            (unsigned)(sds->sem_perm.mode & 0777), why);
    return stale(f, -1, semid,
                 "a semaphore set without its segment, left by a creator that died");
}

/* Stale objects of ours (our magic and version) that another uid owns: a session
 * shared with --mode 666; only its owner may remove it (exit 3). */
static int not_ours_to_remove(sr_error *e, key_t key, int shmid, int semid, uid_t owner)
{
    return err_conflict(e, key, ipcrm_cmd(shmid, semid),
                        "stale objects of ours are there, but uid %u owns them (shmid %d): not "
                        "ours to remove",
                        (unsigned)owner, shmid);
}

/* Looks at what is at the key WITHOUT changing anything, and classifies it
 * (PROTOCOL.md section 4, "Opening"; Rust: session/discover.rs). On FOUND_OURS the
 * segment is attached. Version 3: only what proves it is ours is ever called stale
 * (and so removed): our signature or our header, never operated on or nobody alive,
 * nobody waiting, our uid, and older than the grace; everything else is either a
 * creator at work (wait) or foreign (exit 3, nothing touched).
 *
 * The order of the checks is the Rust one: segment looked up before the set (a
 * creator makes them the other way round, so a segment we find always had its set
 * made first); the set's member count and owner; a set without a segment (looked up
 * again); the segment's owner; attach; an all-zero header (a creator at work, or its
 * corpse); the header; a segment without a set; sem_otime. */
static int inspect(key_t key, found_t *f, sr_error *e)
{
    memset(f, 0, sizeof *f);
    f->shmid = f->semid = -1;
    int shmid, semid;
    if (find_segment(key, &shmid, e) < 0 || find_set(key, &semid, e) < 0)
        return -1;
    if (shmid < 0 && semid < 0) {
        f->what = FOUND_NOTHING;
        return 0;
    }
    struct semid_ds sds;
    memset(&sds, 0, sizeof sds);
    if (semid >= 0) {
        int r = set_stat(key, semid, &sds, e);
        if (r < 0)
            return -1;
        if (r > 0) /* vanished between our two calls: look again */
            return initialising(f, "a semaphore set that vanished while we looked");
        if (sds.sem_nsems != SR_NSEMS || foreign_owner(sds.sem_perm.uid, sds.sem_perm.mode))
            return err_conflict(e, key, ipcrm_cmd(-1, semid),
                                "a semaphore set that is not ours is there (semid %d, owner uid "
                                "%u, %lu members, mode %o)",
                                semid, (unsigned)sds.sem_perm.uid, (unsigned long)sds.sem_nsems,
                                (unsigned)(sds.sem_perm.mode & 0777));
    }
    if (shmid < 0) {
        /* A set without a segment: a creator of ours between its steps 1 and 2, its
         * leftover if it died there, or something else entirely. Our segment lookup
         * came first, so a creator may have made its segment (and even opened the
         * session) between our two lookups: look once more, and only a set that still
         * has no segment beside it is alone. (Rust: the race fix of version 3.) */
        int again;
        if (find_segment(key, &again, e) < 0)
            return -1;
        if (again >= 0)
            return initialising(f, "a creator making its segment");
        return lone_set(key, semid, &sds, f, e);
    }
    struct shmid_ds mds;
    int r = seg_stat(key, shmid, &mds, e);
    if (r < 0)
        return -1;
    if (r > 0)
        return initialising(f, "a segment that vanished while we looked");
    if (foreign_owner(mds.shm_perm.uid, mds.shm_perm.mode))
        return err_conflict(e, key, ipcrm_cmd(shmid, semid),
                            "the segment there (shmid %d) belongs to uid %u with mode %o: it is "
                            "not ours",
                            shmid, (unsigned)mds.shm_perm.uid, (unsigned)(mds.shm_perm.mode & 0777));
    unsigned char *base;
    size_t len;
    r = attach(key, shmid, &base, &len, e);
    if (r < 0)
        return -1;
    if (r > 0)
        return initialising(f, "a segment being removed");
    uint32_t slots, slot_size;
    if (len < SR_HEADER_SIZE) {
        /* Smaller than our header: never ours (validate_header says so, naming it). */
        validate_header(key, shmid, base, len, &slots, &slot_size, e);
        detach_base(base);
        return -1;
    }
    sr_session tmp = {.base = base};
    /* A new segment is all zeros and its creator writes the magic last, so magic 0
     * means "header not complete yet" (acquire: pairs with the creator's release). */
    uint64_t magic = atomic_load_explicit(a64(&tmp, SR_OFF_MAGIC), memory_order_acquire);
    uid_t me = geteuid();
    if (magic == 0) {
        detach_base(base);
        /* Our creator makes the set before the segment and marks the set first, so a
         * blank segment is a creator of ours at work only if a fresh signed set of
         * ours is beside it; anything else was never ours (what `ipcmk -M` leaves,
         * with or without a set of its own). */
        int yes = 0;
        if (semid >= 0) {
            /* A creator of ours writes the header right after it makes the segment. */
            if (age_secs(mds.shm_ctime) < SR_INIT_GRACE_SECS)
                return initialising(f, "a new set, not yet marked by its creator");
            if (signed_and_unused(key, semid, &sds, &yes, e) < 0)
                return -1;
        }
        if (!yes || sds.sem_perm.uid != me || mds.shm_perm.uid != me)
            return err_conflict(e, key, ipcrm_cmd(shmid, -1),
                                "a segment that is not ours is there (shmid %d, owner uid %u, %zu "
                                "bytes, no header)",
                                shmid, (unsigned)mds.shm_perm.uid, (size_t)mds.shm_segsz);
        return stale(f, shmid, semid, "a segment whose creator died before writing the header");
    }
    if (validate_header(key, shmid, base, len, &slots, &slot_size, e) < 0) {
        detach_base(base);
        return -1;
    }
    /* From here the segment proves it is ours (our magic, version and a sound
     * header); removing it as stale also needs it to be ours to remove (our uid). */
    if (semid < 0) {
        detach_base(base);
        /* Its set is gone: the session is being removed (the set goes first) and the
         * processes still attached are on their way out; or a remover died between
         * its two removals, and then nobody is attached. (nattch is from before our
         * own attach.) (Rust's note for this wait reads "a new segment whose creator
         * has not written its header yet"; copied as it is.) */
        if (mds.shm_nattch > 0)
            return initialising(f, "a new segment whose creator has not written its header yet");
        if (mds.shm_perm.uid != me)
            return not_ours_to_remove(e, key, shmid, -1, mds.shm_perm.uid);
        return stale(f, shmid, -1, "a segment without its semaphore set, and nobody attached");
    }
    if (sds.sem_otime == 0) {
        detach_base(base);
        /* Header written, set never opened: a creator between its header and its
         * first semop, or its corpse. (Rust's note text again, as it is.) */
        if (age_secs(sds.sem_ctime) < SR_INIT_GRACE_SECS)
            return initialising(f, "a segment of ours without its semaphore set, still attached "
                                   "by a process (one on its way out, or stopped)");
        int n = 0;
        if (mds.shm_perm.uid != me || sds.sem_perm.uid != me)
            return not_ours_to_remove(e, key, shmid, semid, mds.shm_perm.uid);
        if (waiters(key, semid, &n, e) < 0)
            return -1;
        if (n > 0)
            return not_ours_to_remove(e, key, shmid, semid, mds.shm_perm.uid);
        return stale(f, shmid, semid, "the creator died before initialising the set");
    }
    /* Ours. One more look at the set's member count, now that we are about to use
     * it (it may have been replaced since the first look). */
    r = set_stat(key, semid, &sds, e);
    if (r != 0) {
        detach_base(base);
        if (r < 0)
            return -1;
        return initialising(f, "a semaphore set that vanished while we looked");
    }
    if (sds.sem_nsems != SR_NSEMS) {
        detach_base(base);
        char hint[32];
        snprintf(hint, sizeof hint, "ipcrm -s %d", semid);
        return err_conflict(e, key, hint,
                            "the semaphore set there (semid %d, owner uid %u) has %lu members, "
                            "ours has %d: it is not ours",
                            semid, (unsigned)sds.sem_perm.uid, (unsigned long)sds.sem_nsems,
                            SR_NSEMS);
    }
    f->what = FOUND_OURS;
    f->shmid = shmid;
    f->semid = semid;
    f->base = base;
    f->len = len;
    return 0;
}

/* --- Both mutexes ------------------------------------------------------------
 * Joining and leaving change the counts of BOTH sides, so they take both mutexes,
 * in ONE semop: a process never holds one while waiting for the other, so two such
 * processes can never deadlock. With SEM_UNDO, a process killed while holding them
 * gives them back.
 *
 * Returns 1 held, 0 the objects vanished meanwhile, -2 patience ran out (e says
 * "held for too long", exit 4), -1 other error. patience_s < 0: wait forever (in
 * 100 ms steps); cancellable: give up on Ctrl-C. */
enum { LOCK_PATIENCE = -2 };

static int lock_both(sr_session *s, double patience_s, int cancellable, sr_error *e)
{
    double start = sr_now();
    for (;;) {
        struct sembuf ops[2] = {op(SR_WRITE_MUTEX, -1, 1), op(SR_READ_MUTEX, -1, 1)};
        int r = sem_apply(s, ops, 2, WAIT_POLL, e);
        if (r == 1) {
            put32(s, SR_OFF_WRITE_MUTEX_HOLDER, (uint32_t)s->pid);
            put32(s, SR_OFF_READ_MUTEX_HOLDER, (uint32_t)s->pid);
            return 1;
        }
        if (r < 0)
            return e->code == SR_EXIT_PEER_GONE ? 0 : -1;
        if (cancellable && sr_cancelled())
            return err_interrupted(e, "while joining; nothing of ours was left");
        if (patience_s >= 0 && sr_now() - start > patience_s) {
            err_peer_gone(e, s->key,
                          "a peer has held the session's mutexes for too long (a process "
                          "stopped with Ctrl-Z or SIGSTOP?)");
            return LOCK_PATIENCE;
        }
    }
}

/* Releases both mutexes, together with `extra` operations, in one atomic semop. */
static int unlock_both(sr_session *s, const struct sembuf *extra, size_t n, sr_error *e)
{
    struct sembuf ops[8];
    put32(s, SR_OFF_WRITE_MUTEX_HOLDER, 0);
    put32(s, SR_OFF_READ_MUTEX_HOLDER, 0);
    for (size_t i = 0; i < n; i++)
        ops[i] = extra[i];
    ops[n] = op(SR_WRITE_MUTEX, +1, 1);
    ops[n + 1] = op(SR_READ_MUTEX, +1, 1);
    /* Giving back what we hold never has to wait: IPC_NOWAIT, a would-wait is
     * corruption (version 3: no step waits while it holds a mutex). */
    return sem_apply_now(s, ops, n + 2, "release both mutexes", e);
}

int sr_locked_snapshot(sr_session *s, sr_snapshot *out, int *got, sr_error *e)
{
    sr_error w;
    *got = 0;
    int r = lock_both(s, 1.0, 0, &w);
    if (r == 0)
        return err_peer_gone(e, s->key, "the objects were removed while we waited");
    if (r == LOCK_PATIENCE)
        return 0; /* a stopped peer holds a mutex: nothing can be concluded yet */
    if (r < 0) {
        *e = w;
        return -1;
    }
    int rs = sr_snapshot_get(s, out, e);
    if (unlock_both(s, NULL, 0, rs < 0 ? &w : e) < 0 && rs == 0)
        return -1;
    if (rs < 0)
        return -1;
    *got = 1;
    return 0;
}

/* The owners of our two objects (shmctl/semctl IPC_STAT). Vanished: peer gone. */
static int owners(sr_session *s, uid_t *seg_uid, uid_t *set_uid, sr_error *e)
{
    struct shmid_ds mds;
    struct semid_ds sds;
    int r = seg_stat(s->key, s->shmid, &mds, e);
    if (r == 0)
        r = set_stat(s->key, s->semid, &sds, e);
    if (r > 0)
        return err_peer_gone(e, s->key, "the objects were removed while we used them (IPC_STAT)");
    if (r < 0)
        return -1;
    *seg_uid = mds.shm_perm.uid;
    *set_uid = sds.sem_perm.uid;
    return 0;
}

/* Refuses (exit 3) to remove stale or broken objects that another user owns (a
 * session shared with --mode 666): only the owner may remove System V objects, and
 * they are that user's to remove. (Rust: check_ours_to_remove.) */
static int check_ours_to_remove(sr_session *s, sr_error *e)
{
    uid_t seg_uid, set_uid, me = geteuid();
    if (owners(s, &seg_uid, &set_uid, e) < 0)
        return -1;
    if (seg_uid == me && set_uid == me)
        return 0;
    return err_conflict(e, s->key, ipcrm_cmd(s->shmid, s->semid),
                        "every process of the session there is gone, but uid %u owns its "
                        "objects: not ours to remove",
                        (unsigned)seg_uid);
}

/* Whether we are the only process attached to the segment (shm_nattch <= 1). */
static int sole_attach(sr_session *s, int *sole, sr_error *e)
{
    struct shmid_ds mds;
    int r = seg_stat(s->key, s->shmid, &mds, e);
    if (r > 0)
        return err_peer_gone(e, s->key, "the segment was removed while we used it");
    if (r < 0)
        return -1;
    *sole = mds.shm_nattch <= 1;
    return 0;
}

static int exclusive_conflict(sr_session *s, int role, sr_error *e)
{
    char pids[256];
    char who[280] = "";
    if (live_peer_pids(s, role == SR_ROLE_WRITER ? SR_ROLE_WRITER : SR_ROLE_READER, pids,
                       sizeof pids) > 0)
        snprintf(who, sizeof who, " (pid %s)", pids);
    /* The refusal is worded for who asks and why (the Rust library's words). */
    if (role == SR_ROLE_WRITER && s->shared)
        return err_conflict(e, s->key, NULL,
                            "a --lines session is there%s: join it with --lines (each line one "
                            "message), or pick another key",
                            who);
    if (role == SR_ROLE_WRITER)
        return err_conflict(e, s->key, NULL,
                            "a writer%s is already sending a byte stream there, and a byte stream "
                            "has one writer; writers share a key only when all of them, the first "
                            "included, use --lines",
                            who);
    return err_conflict(e, s->key, NULL,
                        "a reader%s already takes the byte stream there, and a byte stream goes "
                        "to one reader (a second would get every other piece); pick another key",
                        who);
}

/* Joins an initialised session (both mutexes are taken here). Returns 1 joined,
 * 0 look again (the objects went away, or were stale and we removed them), -1. */
static int join(sr_session *s, const sr_open_opts *o, sr_error *e)
{
    int said = 0;
    for (;;) {
        int r = lock_both(s, SR_JOIN_PATIENCE_SECS, 1, e);
        if (r == 1)
            break;
        if (r != LOCK_PATIENCE)
            return r; /* 0: gone, look again; -1: error */
        /* JOIN_PATIENCE without the mutexes. A live holder gives them back (a stopped
         * one when it continues), and a dead one's SEM_UNDO gave them back at its
         * exit, so with nobody alive they can only have been closed from outside:
         * the session can never be joined. (Rust: Session::join.) */
        sr_snapshot n;
        if (sr_snapshot_get(s, &n, e) < 0)
            return -1;
        if (n.sems[SR_WRITERS] + n.sems[SR_READERS] == 0) {
            int sole = 0;
            if (o->role == SR_ROLE_WRITER && sole_attach(s, &sole, e) < 0)
                return -1;
            if (sole) {
                /* A writer alone with such objects recovers them (if its uid owns
                 * them), then creates anew. */
                if (check_ours_to_remove(s, e) < 0)
                    return -1;
                sr_note("recovering broken objects at key %s: both mutexes closed and nobody "
                        "alive to open them; removing %s",
                        sr_key_str(s->key), ipcrm_cmd(s->shmid, s->semid));
                if (remove_objects(s, e) < 0)
                    return -1;
                return 0;
            }
            return err_corrupt(e, s->key,
                               "the session's mutexes have stayed closed for %d s and no process "
                               "is alive to open them: the semaphores were changed from outside",
                               SR_JOIN_PATIENCE_SECS);
        }
        if (!said) {
            sr_note("waiting to join key %s: a peer holds the session's mutexes (stopped with "
                    "Ctrl-Z?)",
                    sr_key_str(s->key));
            said = 1;
        }
    }
    sr_snapshot n;
    if (sr_snapshot_get(s, &n, e) < 0)
        goto fail;
    uint32_t flags = sr_header_u32(s, SR_OFF_FLAGS);
    s->shared = (flags & SR_FLAG_SHARED) != 0;
    int nobody_alive = n.sems[SR_WRITERS] + n.sems[SR_READERS] == 0;
    /* A complete stream that waits for its first reader (writer --persist). */
    int persisted = n.state == SR_STATE_ENDED && n.readers_joined == 0;
    const char *ids = ipcrm_cmd(s->shmid, s->semid);
    char idbuf[96];
    snprintf(idbuf, sizeof idbuf, "%s", ids);
    /* The writer's checks, in this order (Rust: join_locked): */
    if (o->role == SR_ROLE_WRITER) {
        if (nobody_alive && !persisted) {
            /* 1. Every peer is dead and nothing waits for a reader: stale. Removing
             *    the set wakes nobody (nobody is there), but only what our uid owns
             *    is ours to remove (version 3). */
            if (check_ours_to_remove(s, e) < 0 || remove_objects(s, e) < 0)
                goto fail;
            sr_note("recovered stale objects at key %s (every process that used them is gone): "
                    "removed them (%s)",
                    sr_key_str(s->key), idbuf);
            return 0;
        }
        if (n.state == SR_STATE_ENDED) {
            /* 2. The stream has ended: no writer may join any more. */
            if (persisted)
                err_conflict(e, s->key, idbuf,
                             "a finished stream is waiting there for its reader (run `reader`)");
            else
                err_conflict(e, s->key, NULL,
                             "the stream there has ended and its readers are draining it");
            goto fail;
        }
        if (!s->shared || !o->shared) {
            /* 3. A byte stream has exactly one writer; --lines writers share only with
             *    --lines writers. */
            exclusive_conflict(s, o->role, e);
            goto fail;
        }
    } else if (!s->shared && n.readers_joined > 0) {
        if (nobody_alive) {
            /* A byte stream whose reader and writer are both gone: nobody can complete
             * it (it was already partly read), so it is stale. (Rust: the reader
             * removes it too; our uid only.) */
            if (check_ours_to_remove(s, e) < 0 || remove_objects(s, e) < 0)
                goto fail;
            sr_note("recovered stale objects at key %s (every process that used them is gone): "
                    "removed them (%s)",
                    sr_key_str(s->key), idbuf);
            return 0;
        }
        exclusive_conflict(s, o->role, e);
        goto fail;
    }
    uint32_t role_code, id;
    size_t joined_field;
    if (o->role == SR_ROLE_WRITER) {
        id = sr_header_u32(s, SR_OFF_NEXT_WRITER_ID);
        put32(s, SR_OFF_NEXT_WRITER_ID, id + 1);
        role_code = SR_ROLE_WRITER;
        joined_field = SR_OFF_WRITERS_JOINED;
    } else {
        id = n.readers_joined + 1; /* a reader's id is its join number */
        role_code = SR_ROLE_READER;
        joined_field = SR_OFF_READERS_JOINED;
    }
    s->id = id;
    if (set_peer(s, role_code, id, e) < 0)
        goto fail;
    add32(s, joined_field, 1);
    /* Count ourselves (SEM_UNDO: the kernel un-counts us if we die) and release both
     * mutexes, in one atomic step: nobody can see us joined but not counted. */
    struct sembuf count = op(o->role == SR_ROLE_WRITER ? SR_WRITERS : SR_READERS, +1, 1);
    if (unlock_both(s, &count, 1, e) < 0)
        return -1;
    s->joined = 1;
    return 1;
fail: {
    sr_error ignored;
    (void)unlock_both(s, NULL, 0, &ignored);
    return -1;
}
}

int sr_open(sr_session *s, const sr_open_opts *o, sr_error *e)
{
    int said_waiting = 0, said_busy = 0;
    double init_since = -1;
    for (;;) {
        if (sr_cancelled())
            return err_interrupted(e, "before joining; nothing was created");
        if (o->role == SR_ROLE_WRITER) {
            int r = create_session(s, o, e);
            if (r != 0)
                return r > 0 ? 0 : -1;
        }
        found_t f;
        if (inspect(o->key, &f, e) < 0)
            return -1;
        switch (f.what) {
        case FOUND_OURS: {
            memset(s, 0, sizeof *s);
            s->key = o->key;
            s->shmid = f.shmid;
            s->semid = f.semid;
            s->base = f.base;
            s->len = f.len;
            s->slots = sr_header_u32(s, SR_OFF_SLOT_COUNT);
            s->slot_size = sr_header_u32(s, SR_OFF_SLOT_SIZE);
            s->role = o->role;
            s->pid = getpid();
            int r = join(s, o, e);
            if (r == 1)
                return 0;
            detach_base(s->base);
            s->base = NULL;
            if (r < 0)
                return -1;
            continue; /* removed or gone between our look and our join: look again */
        }
        case FOUND_NOTHING:
            /* Only a reader gets here (a writer would have created). */
            if (!said_waiting) {
                sr_note("waiting for a writer on key %s (start `writer --key %s`)",
                        sr_key_str(o->key), sr_key_str(o->key));
                said_waiting = 1;
            }
            sr_sleep_ms(SR_POLL_MS);
            break;
        case FOUND_INITIALISING:
            /* A creator or a remover needs microseconds; look again soon. A state
             * that outlasts the grace is worth saying once (a stopped process, or a
             * leftover only its owner can clear). */
            if (init_since < 0)
                init_since = sr_now();
            if (sr_now() - init_since > SR_INIT_GRACE_SECS && !said_busy) {
                sr_note("waiting at key %s: %s", sr_key_str(o->key), f.why);
                said_busy = 1;
            }
            sr_sleep_ms(10);
            break;
        case FOUND_STALE:
            if (o->role == SR_ROLE_READER && f.shmid < 0) {
                /* A reader never removes what it cannot read: wait for a writer to
                 * recover it, and say so once. */
                if (!said_busy) {
                    sr_note("waiting at key %s: %s; the next writer recovers it",
                            sr_key_str(o->key), f.why);
                    said_busy = 1;
                }
                sr_sleep_ms(SR_POLL_MS);
                break;
            }
            sr_note("recovering stale objects at key %s (%s): removing %s", sr_key_str(o->key),
                    f.why, ipcrm_cmd(f.shmid, f.semid));
            /* The set first (anyone asleep on it would wake with EIDRM; inspect made
             * sure nobody is), then the segment. */
            if (f.semid >= 0 && remove_set(o->key, f.semid, e) < 0)
                return -1;
            if (f.shmid >= 0 && remove_segment(o->key, f.shmid, e) < 0)
                return -1;
            break;
        }
    }
}

/* writer --remove (`make clean`): removes the session at the key if it is ours (our
 * magic and version, our member count, our user) and no live process uses it, or our
 * stale leftovers; refuses (exit 3), changing nothing, for anything foreign, a live
 * session, one being created, and a finished stream that waits for its reader unless
 * `force`. Returns 0 nothing there, 1 removed (`what` says what), -1.
 * (Rust: session::remove_session.) */
int sr_remove_session(key_t key, int force, char *what, size_t cap, sr_error *e)
{
    found_t f;
    if (inspect(key, &f, e) < 0)
        return -1;
    if (f.what == FOUND_NOTHING)
        return 0;
    if (f.what == FOUND_INITIALISING)
        return err_conflict(e, key, NULL, "a writer is creating a session there right now");
    if (f.what == FOUND_STALE) {
        snprintf(what, cap, "%s (%s)", ipcrm_cmd(f.shmid, f.semid), f.why);
        if (f.semid >= 0 && remove_set(key, f.semid, e) < 0)
            return -1;
        if (f.shmid >= 0 && remove_segment(key, f.shmid, e) < 0)
            return -1;
        return 1;
    }
    sr_session s;
    memset(&s, 0, sizeof s);
    s.key = key;
    s.shmid = f.shmid;
    s.semid = f.semid;
    s.base = f.base;
    s.len = f.len;
    uint16_t v[SR_NSEMS];
    int rc = -1;
    if (sem_values(&s, v, e) < 0)
        goto out;
    unsigned live = (unsigned)v[SR_WRITERS] + v[SR_READERS];
    if (live > 0) {
        err_conflict(e, key, NULL,
                     "the session there is in use by %u live process(es); stop them first", live);
        goto out;
    }
    int unread = sr_header_u32(&s, SR_OFF_STATE) == SR_STATE_ENDED &&
                 sr_header_u32(&s, SR_OFF_READERS_JOINED) == 0;
    if (unread && !force) {
        err_conflict(e, key, NULL,
                     "a finished stream of %" PRIu64 " bytes waits there for its reader; run "
                     "`reader --key %s` to take it, or remove it anyway with --force",
                     sr_header_u64(&s, SR_OFF_BYTES_PUBLISHED), sr_key_str(key));
        goto out;
    }
    snprintf(what, cap, "%s", ipcrm_cmd(s.shmid, s.semid));
    if (remove_set(key, s.semid, e) < 0 || remove_segment(key, s.shmid, e) < 0)
        goto out;
    rc = 1;
out:
    detach_base(s.base);
    return rc;
}

/* PROTOCOL.md section 5, "Leave". */
int sr_leave(sr_session *s, int finished, int *how, sr_error *e)
{
    *how = SR_ALREADY_GONE;
    if (!s->joined)
        return 0;
    /* Bounded: if a stopped peer holds a mutex we give up after 5 s; the kernel's
     * SEM_UNDO un-counts us at exit anyway, and the last one removes. */
    int r = lock_both(s, 5.0, 0, e);
    if (r == 0) {
        s->joined = 0;
        return 0;
    }
    if (r < 0)
        return -1; /* including "held for too long" */
    sr_snapshot n;
    if (sr_snapshot_get(s, &n, e) < 0)
        goto fail;
    clear_peer(s);
    if (finished)
        add32(s, s->role == SR_ROLE_WRITER ? SR_OFF_WRITERS_FINISHED : SR_OFF_READERS_FINISHED, 1);
    uint32_t others = sub0((uint32_t)n.sems[SR_WRITERS] + n.sems[SR_READERS], 1);
    /* A writer that finished a stream no reader has joined yet keeps it (--persist). */
    int persisted = s->role == SR_ROLE_WRITER && finished && n.state == SR_STATE_ENDED &&
                    n.readers_joined == 0;
    int departure = SR_LEFT;
    if (others == 0 && !persisted) {
        /* We are the last one and nothing waits for anyone: remove, explicitly. Only
         * the owner (or root) may remove System V objects: the last one out of another
         * user's session (shared with --mode 666) leaves them for their owner, whose
         * next writer recovers them as stale (Rust: Departure::LeftToOwner, exit 0). */
        uid_t seg_uid, set_uid, me = geteuid();
        if (owners(s, &seg_uid, &set_uid, e) < 0)
            goto fail;
        uid_t other = seg_uid != me ? seg_uid : set_uid;
        if (me == 0 || other == me) {
            if (remove_objects(s, e) < 0)
                goto fail;
            *how = SR_REMOVED;
            return 0;
        }
        departure = SR_LEFT_TO_OWNER;
        s->owner = other;
    }
    /* Un-count ourselves (the SEM_UNDO'd +1 of our join, cancelled by a SEM_UNDO'd
     * -1) and, for a writer whose END/FINAL is out, ENDED likewise. */
    struct sembuf extra[2];
    size_t k = 0;
    extra[k++] = op(s->role == SR_ROLE_WRITER ? SR_WRITERS : SR_READERS, -1, 1);
    if (s->ended)
        extra[k++] = op(SR_ENDED, -1, 1);
    if (unlock_both(s, extra, k, e) < 0)
        goto fail;
    s->joined = 0;
    *how = departure;
    return 0;
fail:
    if (s->joined) {
        sr_error ignored;
        (void)unlock_both(s, NULL, 0, &ignored);
    }
    return -1;
}

/* After corruption was found: removes both objects if our uid owns them (nobody can
 * complete the session, and the objects prove they are ours: our magic, our attach).
 * The set goes first (every sleeper wakes with EIDRM), then the segment. No mutex
 * is taken: a corrupt session's counts cannot be trusted to give them. *removed:
 * whether anything was there to remove. (Rust: Session::remove_broken.) */
int sr_remove_broken(sr_session *s, int *removed, sr_error *e)
{
    *removed = 0;
    if (check_ours_to_remove(s, e) < 0)
        return -1;
    int set = remove_set(s->key, s->semid, e);
    if (set < 0)
        return -1;
    int seg = remove_segment(s->key, s->shmid, e);
    if (seg < 0)
        return -1;
    s->joined = 0;
    *removed = set || seg;
    return 0;
}

/* After the set was removed from outside (semctl(IPC_STAT) on it fails with
 * EINVAL/EIDRM): removes our segment too (we attached it and checked its header, so
 * it is ours), so that nothing is left at the key. Nothing if the set is still there.
 * (Rust: Session::remove_orphaned_segment.) */
int sr_remove_orphaned_segment(sr_session *s, int *removed, sr_error *e)
{
    struct semid_ds sds;
    sr_error ignored;
    *removed = 0;
    if (set_stat(s->key, s->semid, &sds, &ignored) != 1)
        return 0;
    s->joined = 0;
    int r = remove_segment(s->key, s->shmid, e);
    if (r < 0)
        return -1;
    *removed = r;
    return 0;
}

void sr_leave_after(sr_session *s, const sr_error *err)
{
    key_t key = s->key;
    sr_error le;
    if (err->code == SR_EXIT_CORRUPT) {
        int removed;
        if (sr_remove_broken(s, &removed, &le) < 0)
            sr_note("could not remove the corrupt session: %s", le.msg);
        else if (removed)
            sr_note("removed the corrupt session's segment and semaphore set at key %s",
                    sr_key_str(key));
        return;
    }
    int how;
    if (sr_leave(s, 0, &how, &le) < 0) {
        sr_note("could not leave cleanly: %s", le.msg);
        return;
    }
    if (how == SR_REMOVED) {
        sr_note("removed the segment and semaphore set at key %s", sr_key_str(key));
    } else if (how == SR_ALREADY_GONE) {
        int removed = 0;
        if (sr_remove_orphaned_segment(s, &removed, &le) == 0 && removed)
            sr_note("the semaphore set at key %s was removed from outside; removed its segment "
                    "too",
                    sr_key_str(key));
    } else if (how == SR_LEFT_TO_OWNER) {
        sr_note("left the objects at key %s to their owner (uid %u), who alone may remove them",
                sr_key_str(key), (unsigned)s->owner);
    }
}

void sr_detach(sr_session *s)
{
    detach_base(s->base);
    s->base = NULL;
}

/* ===========================================================================
 * 7. Sending: the producer
 *
 * The writer's critical section, in two semops:
 *   take:    { FREE, -k, SEM_UNDO }, { WRITE_MUTEX, -1, SEM_UNDO }
 *   publish: { FREE, +k, SEM_UNDO }, { FREE, -k, 0 }, { HEAD, +d, 0 },
 *            { FILLED, +k, 0 }, { WRITE_MUTEX, +1, SEM_UNDO }
 * (the publish with IPC_NOWAIT on every operation: it only adds or gives back, so
 * in a consistent session it never waits, and one that would is corruption - it
 * must never sleep holding the mutex; version 3)
 *
 * Why SEM_UNDO on FREE, and why it is cancelled: if we die between the two, the
 * kernel's undo gives the k slots and the mutex back, and since FILLED never moved
 * nobody ever sees our half-written slots. But undo adjustments accumulate over the
 * process's life, so leaving them would hand back slots at exit that readers have
 * long since refilled. { FREE, +k, SEM_UNDO } followed by { FREE, -k, 0 } in the
 * same call changes FREE by 0 and our adjustment by -k, back to nothing.
 *
 * Why HEAD moves in the SAME semop as FILLED: if it moved before, a dead writer
 * would leave HEAD past slots nobody published (lost frames forever); if after, a
 * reader could see FILLED grow while HEAD still pointed at the old slots, and a
 * second writer could take the mutex and write over the frames just published. In
 * one semop, the frames become visible and the index moves at one instant.
 * ========================================================================= */

size_t sr_capacity(const sr_session *s) { return s->slot_size - SR_FRAME_HEADER; }

static size_t slot_offset(const sr_session *s, uint32_t index)
{
    return SR_HEADER_SIZE + (size_t)index * s->slot_size;
}

/* The 32-byte frame header (PROTOCOL.md 2.2), little-endian, with its CRC over
 * bytes 0..28 and then the payload. */
static void put_le32(unsigned char *b, uint32_t v)
{
    for (int i = 0; i < 4; i++)
        b[i] = (unsigned char)(v >> (8 * i));
}
static void put_le64(unsigned char *b, uint64_t v)
{
    for (int i = 0; i < 8; i++)
        b[i] = (unsigned char)(v >> (8 * i));
}
static uint32_t get_le32(const unsigned char *b)
{
    return (uint32_t)b[0] | (uint32_t)b[1] << 8 | (uint32_t)b[2] << 16 | (uint32_t)b[3] << 24;
}
static uint64_t get_le64(const unsigned char *b)
{
    return (uint64_t)get_le32(b) | (uint64_t)get_le32(b + 4) << 32;
}

/* Fills the header fields; returns the CRC of bytes 0..28 (continue it over the
 * payload, then store it at 28). */
static uint32_t frame_unsealed(unsigned char h[SR_FRAME_HEADER], uint32_t len, uint32_t kind,
                               uint64_t seq, uint64_t offset, uint32_t writer)
{
    put_le32(h, len);
    put_le32(h + 4, kind);
    put_le64(h + 8, seq);
    put_le64(h + 16, offset);
    put_le32(h + 24, writer);
    put_le32(h + 28, 0);
    return sr_crc32c(0, h, 28);
}

/* Where a batch of k starts: HEAD for a writer holding k slots it took from FREE
 * (and WRITE_MUTEX), TAIL for a reader holding k frames it took from FILLED (and
 * READ_MUTEX). (Rust: ring::batch_start.)
 *
 * A byte stream reads the one index with semctl(GETVAL): its reader checks every
 * frame's place in the stream, which catches any outside change of the counts.
 * A shared (--lines) session cannot: version 3 reads every count at once
 * (semctl(GETALL)) and checks that they agree with the indices - every slot is free
 * (FREE), held by the mutex holder (k), or published and not yet freed, and the
 * last are exactly the slots from TAIL to HEAD. A writer checks slots - FREE - k, a
 * reader FILLED + k, against that distance; if they disagree someone changed the
 * counts from outside, and a writer would overwrite frames nobody read, a reader
 * take slots nobody published: corruption (exit 6). */
enum { SIDE_WRITER, SIDE_READER };

static int batch_start(sr_session *s, int side, uint32_t k, uint32_t *out, sr_error *e)
{
    uint32_t slots = s->slots;
    if (!s->shared)
        return sem_getval(s, side == SIDE_WRITER ? SR_HEAD : SR_TAIL, out, e);
    uint16_t v[SR_NSEMS];
    if (sem_values(s, v, e) < 0)
        return -1;
    uint32_t head = v[SR_HEAD], tail = v[SR_TAIL];
    uint32_t distance = (head + slots - (tail < slots ? tail : slots)) % slots;
    int64_t held = side == SIDE_WRITER ? (int64_t)slots - v[SR_FREE] - (int64_t)k
                                       : (int64_t)v[SR_FILLED] + (int64_t)k;
    int agree = head < slots && tail < slots && held >= 0 && held <= (int64_t)slots &&
                (uint32_t)held % slots == distance;
    if (!agree)
        return err_corrupt(e, s->key,
                           "the semaphore counts were changed from outside: HEAD %u, TAIL %u, "
                           "FREE %u, FILLED %u do not add up for a %s holding %u of %u slots",
                           head, tail, v[SR_FREE], v[SR_FILLED],
                           side == SIDE_WRITER ? "writer" : "reader", k, slots);
    *out = side == SIDE_WRITER ? head : tail;
    return 0;
}

void sr_producer_init(sr_producer *p, sr_session *s, uint32_t max_batch)
{
    memset(p, 0, sizeof *p);
    p->s = s;
    if (max_batch < 1)
        max_batch = 1;
    if (max_batch > s->slots)
        max_batch = s->slots;
    p->max_batch = max_batch;
}

/* DATA frames published and not (yet) consumed, by the header's counters (FILLED
 * would count the FINAL frame too). */
static uint64_t unread(const sr_session *s)
{
    uint64_t pub = sr_header_u64(s, SR_OFF_FRAMES_PUBLISHED);
    uint64_t con = sr_header_u64(s, SR_OFF_FRAMES_CONSUMED);
    return pub > con ? pub - con : 0;
}

/* While blocked (or finished): fail if every reader that came has gone. A
 * suspicion from an unlocked snapshot is confirmed under both mutexes, because an
 * unlocked look can catch a joining reader after its "joined" counter went up but
 * before its live count did. */
static int check_readers(sr_producer *p, const sr_snapshot *n, int blocked, sr_error *e)
{
    sr_session *s = p->s;
    if (n->sems[SR_READERS] == 0 && sr_lost_readers(n) > 0) {
        sr_snapshot m;
        int got;
        if (sr_locked_snapshot(s, &m, &got, e) < 0)
            return -1;
        if (got && m.sems[SR_READERS] == 0 && sr_lost_readers(&m) > 0)
            return err_peer_gone(e, s->key,
                                 "the reader died or left before the end; %" PRIu64 " frames (%" PRIu64
                                 " bytes) of ours were published, %" PRIu64 " of them never read",
                                 p->seq, p->bytes, unread(s));
    }
    if (blocked && n->readers_joined == 0 && !p->said_waiting) {
        sr_note("the ring is full; waiting for a reader on key %s (start `reader --key %s`)",
                sr_key_str(s->key), sr_key_str(s->key));
        p->said_waiting = 1;
    }
    if (!p->said_stopped) {
        char list[256];
        if (stopped_peers(s, SR_ROLE_READER, list, sizeof list) > 0) {
            sr_note("reader pid %s is stopped (Ctrl-Z or SIGSTOP); waiting until it "
                    "continues (`fg`, or `kill -CONT PID`)", list);
            p->said_stopped = 1;
        }
    }
    return 0;
}

/* After the last frame. Version 3: a reader that took everything (every data frame
 * freed, only the FINAL frame left: FILLED <= 1 and FREE + FILLED = slots) and then
 * died before leaving lost nothing, so that is no lost reader. */
int sr_check_readers_now(sr_producer *p, sr_snapshot *snap, sr_error *e)
{
    if (sr_snapshot_get(p->s, snap, e) < 0)
        return -1;
    uint32_t free_now = snap->sems[SR_FREE], filled = snap->sems[SR_FILLED];
    if (filled <= 1 && free_now + filled == p->s->slots)
        return 0;
    return check_readers(p, snap, 0, e);
}

/* Gives back k slots and the mutex without publishing (an error mid-batch). */
static int release_unpublished(sr_producer *p, uint32_t k, sr_error *e)
{
    put32(p->s, SR_OFF_WRITE_MUTEX_HOLDER, 0);
    struct sembuf ops[2] = {op(SR_FREE, (int)k, 1), op(SR_WRITE_MUTEX, +1, 1)};
    return sem_apply_now(p->s, ops, 2, "give back unused slots and the write mutex", e);
}

/* Takes between 1 and `want` free slots and the write mutex; *head, *k. Sleeps while
 * the ring is full, looking for dead readers and Ctrl-C every 100 ms.
 * (Rust: the first try is IPC_NOWAIT for all `want`; after it fails, GETALL: take
 * what is free if anything is, else sleep for half the ring (at least one, at most
 * want) so that a full ring does not hand over one slot per wake-up. Every later
 * try sleeps up to 100 ms, and the readers are checked only after such a sleep.) */
static int acquire(sr_producer *p, uint32_t want, uint32_t *head, uint32_t *k_out, sr_error *e)
{
    sr_session *s = p->s;
    uint32_t k = want;
    int nowait = 1;
    for (;;) {
        struct sembuf ops[2] = {op(SR_FREE, -(int)k, 1), op(SR_WRITE_MUTEX, -1, 1)};
        int r = sem_apply(s, ops, 2, nowait ? WAIT_NOWAIT : WAIT_POLL, e);
        if (r < 0)
            return -1;
        if (r == 1)
            break;
        if (sr_cancelled())
            return err_interrupted(e, "while waiting for a free slot");
        sr_snapshot n;
        if (sr_snapshot_get(s, &n, e) < 0)
            return -1;
        if (!nowait && check_readers(p, &n, 1, e) < 0)
            return -1;
        uint32_t free_now = n.sems[SR_FREE];
        uint32_t half = s->slots / 2 ? s->slots / 2 : 1;
        k = free_now > 0 ? (free_now < want ? free_now : want) : (want < half ? want : half);
        nowait = 0;
    }
    put32(s, SR_OFF_WRITE_MUTEX_HOLDER, (uint32_t)s->pid);
    uint32_t h = p->head;
    if (!p->have_head && batch_start(s, SIDE_WRITER, k, &h, e) < 0) {
        sr_error ignored;
        (void)release_unpublished(p, k, &ignored);
        return -1;
    }
    if (h >= s->slots) {
        sr_error ignored;
        (void)release_unpublished(p, k, &ignored);
        return err_corrupt(e, s->key, "HEAD is %u but the ring has %u slots", h, s->slots);
    }
    *head = h;
    *k_out = k;
    return 0;
}

/* Publishes the first `used` of the `taken` slots from `head` (of which `data` are
 * DATA frames carrying `bytes`), gives the others back, releases the mutex: one
 * semop. `state`: a new header state (ENDED, with FINAL) stored just before.
 * `ended`: add { ENDED, +1, SEM_UNDO } to the same call (END/FINAL). */
static int publish(sr_producer *p, uint32_t head, uint32_t taken, uint32_t used, uint32_t data,
                   uint64_t bytes, uint32_t state, int ended, sr_error *e)
{
    sr_session *s = p->s;
    uint32_t new_head = (head + used) % s->slots;
    add64(s, SR_OFF_FRAMES_PUBLISHED, data);
    add64(s, SR_OFF_BYTES_PUBLISHED, bytes);
    if (state)
        atomic_store_explicit(a32(s, SR_OFF_STATE), state, memory_order_release);
    put32(s, SR_OFF_WRITE_MUTEX_HOLDER, 0);
    struct sembuf ops[6];
    size_t n = 0;
    ops[n++] = op(SR_FREE, (int)taken, 1); /* cancel the undo of the take ... */
    if (used > 0)
        ops[n++] = op(SR_FREE, -(int)used, 0); /* ... while really using `used` slots */
    /* A zero sem_op would mean "wait until the value is zero": leave such ops out. */
    if (new_head != head)
        ops[n++] = op(SR_HEAD, (int)new_head - (int)head, 0);
    if (used > 0)
        ops[n++] = op(SR_FILLED, (int)used, 0); /* the frames become visible here */
    ops[n++] = op(SR_WRITE_MUTEX, +1, 1);
    if (ended)
        ops[n++] = op(SR_ENDED, +1, 1); /* undone by the kernel if we die after END */
    /* It only adds and gives back: IPC_NOWAIT, a would-wait is corruption. */
    if (sem_apply_now(s, ops, n, "publish the frames: HEAD moves, FILLED grows, write mutex released",
                      e) < 0)
        return -1;
    if (!s->shared) {
        /* The only writer of a byte stream: nobody else moves HEAD. */
        p->have_head = 1;
        p->head = new_head;
    }
    return 0;
}

/* Payload first, then the header: the order does not matter to readers (they see
 * nothing before the publishing semop), but it is the natural one. */
static void write_slot(sr_producer *p, uint32_t index, uint32_t kind, const unsigned char *payload,
                       size_t len, uint64_t seq, uint64_t offset)
{
    sr_session *s = p->s;
    unsigned char *at = s->base + slot_offset(s, index);
    unsigned char h[SR_FRAME_HEADER];
    uint32_t crc = frame_unsealed(h, (uint32_t)len, kind, seq, offset, s->id);
    if (len)
        memcpy(at + SR_FRAME_HEADER, payload, len);
    put_le32(h + 28, sr_crc32c(crc, payload, len));
    memcpy(at, h, SR_FRAME_HEADER);
}

int sr_send(sr_producer *p, const sr_span *frames, size_t n, sr_error *e)
{
    size_t cap = sr_capacity(p->s);
    for (size_t i = 0; i < n; i++)
        if (frames[i].n > cap)
            return err_usage(e, "frame", "%zu bytes exceed the slot payload of %zu", frames[i].n,
                             cap);
    while (n > 0) {
        uint32_t want = n < p->max_batch ? (uint32_t)n : p->max_batch;
        uint32_t head, k;
        if (acquire(p, want, &head, &k, e) < 0)
            return -1;
        uint64_t bytes = 0;
        for (uint32_t j = 0; j < k; j++) {
            write_slot(p, (head + j) % p->s->slots, SR_KIND_DATA, frames[j].p, frames[j].n,
                       p->seq + j, p->bytes + bytes);
            bytes += frames[j].n;
        }
        if (publish(p, head, k, k, k, bytes, 0, 0, e) < 0)
            return -1;
        p->seq += k;
        p->bytes += bytes;
        frames += k;
        n -= k;
    }
    return 0;
}

int sr_send_bytes(sr_producer *p, const unsigned char *data, size_t n, sr_error *e)
{
    size_t cap = sr_capacity(p->s);
    size_t m = (n + cap - 1) / cap;
    if (m == 0)
        return 0; /* no empty DATA frames */
    sr_span one, *spans = m == 1 ? &one : malloc(m * sizeof *spans);
    if (!spans)
        return sr_fail(e, SR_EXIT_OS, NULL, "out of memory for %zu frames", m);
    for (size_t i = 0; i < m; i++) {
        spans[i].p = data + i * cap;
        spans[i].n = i + 1 < m ? cap : n - i * cap;
    }
    int r = sr_send(p, spans, m, e);
    if (spans != &one)
        free(spans);
    return r;
}

int sr_send_from_fd(sr_producer *p, int fd, uint32_t want, uint64_t *sent, sr_error *e)
{
    sr_session *s = p->s;
    size_t cap = sr_capacity(s);
    uint32_t head = 0, k = 0;
    *sent = 0;
    if (acquire(p, want ? want : 1, &head, &k, e) < 0)
        return -1;
    uint32_t used = 0;
    uint64_t bytes = 0;
    int failure = 0;
    sr_error fe;
    int at_end = 0;
    while (used < k && !at_end) {
        unsigned char *at = s->base + slot_offset(s, (head + used) % s->slots);
        /* read(2) straight into the slot: the kernel copies the file into the
         * segment, with no buffer of ours in between. Again after a short read, until
         * the slot is full or the file ends (a regular file reads short only at its
         * end, but that is the file system's promise, not ours to rely on for the
         * framing). */
        size_t n = 0;
        while (n < cap) {
            ssize_t r = read(fd, at + SR_FRAME_HEADER + n, cap - n);
            if (r < 0 && errno == EINTR)
                continue;
            if (r < 0) {
                int err = errno;
                sr_fail(&fe, SR_EXIT_OS, NULL, "reading the input: %s (os error %d)",
                        strerror(err), err);
                failure = 1;
                break;
            }
            if (r == 0) {
                at_end = 1;
                break;
            }
            n += (size_t)r;
        }
        if (n == 0 || failure)
            break;
        unsigned char h[SR_FRAME_HEADER];
        uint32_t crc = frame_unsealed(h, (uint32_t)n, SR_KIND_DATA, p->seq + used, p->bytes + bytes,
                                      s->id);
        put_le32(h + 28, sr_crc32c(crc, at + SR_FRAME_HEADER, n));
        memcpy(at, h, SR_FRAME_HEADER);
        used++;
        bytes += (uint64_t)n;
    }
    /* Publish what was filled and give the rest back, in the one semop. */
    if (publish(p, head, k, used, used, bytes, 0, 0, e) < 0)
        return -1;
    p->seq += used;
    p->bytes += bytes;
    if (failure) {
        *e = fe;
        return -1;
    }
    *sent = bytes;
    return 0;
}

int sr_finish(sr_producer *p, int *was_final, sr_error *e)
{
    sr_session *s = p->s;
    uint32_t head = 0, k = 0;
    if (acquire(p, 1, &head, &k, e) < 0)
        return -1;
    /* With WRITE_MUTEX held no writer can join, end or leave, so "am I the last
     * writer still sending?" has one answer: WRITERS - ENDED (kernel-kept). */
    sr_snapshot n;
    if (sr_snapshot_get(s, &n, e) < 0) {
        sr_error ignored;
        (void)release_unpublished(p, k, &ignored);
        return -1;
    }
    int last = sr_writers_still_sending(&n) <= 1;
    add32(s, SR_OFF_WRITERS_ENDED, 1);
    write_slot(p, head, last ? SR_KIND_FINAL : SR_KIND_END, NULL, 0, p->seq, p->bytes);
    /* FINAL: the state becomes "ended" just before the frame is published. */
    if (publish(p, head, k, 1, 0, 0, last ? SR_STATE_ENDED : 0, 1, e) < 0)
        return -1;
    s->ended = 1;
    *was_final = last;
    return 0;
}

/* ===========================================================================
 * 8. Receiving: the consumer
 *
 * The mirror image of the producer:
 *   take:    { FILLED, -k, SEM_UNDO }, { READ_MUTEX, -1, SEM_UNDO }
 *   release: { FILLED, +k, SEM_UNDO }, { FILLED, -c, 0 }, { TAIL, +d, 0 },
 *            { FREE, +c, 0 }, { READ_MUTEX, +1, SEM_UNDO }   (all IPC_NOWAIT)
 * where c <= k is how many frames we consumed (all, or those before FINAL, which
 * stays in the ring for every other reader). A reader killed before the release
 * loses nothing: the undo puts its k frames back for the next reader.
 * ========================================================================= */

void sr_consumer_init(sr_consumer *c, sr_session *s, uint32_t max_batch)
{
    memset(c, 0, sizeof *c);
    c->s = s;
    /* At most max_batch frames and 512 KiB of slots, but at least one, and never
     * more than the ring. */
    uint32_t by_bytes = SR_MAX_BATCH_BYTES / s->slot_size;
    if (by_bytes < 1)
        by_bytes = 1;
    uint32_t b = max_batch < by_bytes ? max_batch : by_bytes;
    if (b < 1)
        b = 1;
    if (b > s->slots)
        b = s->slots;
    c->max_batch = b;
    c->last_progress = -1; /* no spin until sr_consumer_set_spin */
}

/* --- The spin before sleeping (Rust: ring/spin.rs) --------------------------------
 * Waking a sleeping process costs microseconds (tens across CPUs on a VM): when
 * frames arrive every few microseconds, a reader that watches the header's counters
 * for a moment before it sleeps takes the next frame without any wake-up at all.
 * Watching costs CPU, so the spin is bounded (--spin per wait) and adaptive: it
 * happens only while the writer was active moments ago (frames arrived within the
 * window: 20 spins, at least 2 ms), so an idle reader sleeps at once.
 *
 * Spinning changes nothing in the protocol: the semaphores stay the only
 * synchronisation. The spin only WATCHES (the header's published/consumed counts,
 * its state, writers_ended, and every 200 us the WRITERS count with semctl(GETVAL))
 * and then takes what it saw with the same IPC_NOWAIT semop as ever. A Ctrl-C, the
 * end of the stream (state or writers_ended changed: END/FINAL frames are not in the
 * header's data counts) and a dead writer each end the spin, and the sleeping path,
 * which handles all three, takes over. */
#define SPIN_LIVENESS_EVERY 200e-6

typedef struct {
    double until, next_liveness;
    uint32_t state, writers_ended, turns;
} spin_episode;

void sr_consumer_set_spin(sr_consumer *c, uint64_t us)
{
    if (us > SR_MAX_SPIN_US)
        us = SR_MAX_SPIN_US;
    c->spin = (double)us / 1e6;
    c->last_progress = -1;
    /* With one CPU the peer can only run when we give it up, so the spin yields
     * (sched_getaffinity(2): the CPUs we may run on). */
    cpu_set_t set;
    CPU_ZERO(&set);
    c->one_cpu = sched_getaffinity(0, sizeof set, &set) == 0 && CPU_COUNT(&set) <= 1;
}

static void spin_progress(sr_consumer *c)
{
    if (c->spin > 0)
        c->last_progress = sr_now();
}

/* A spin for this wait, if spinning is on and the writer was active moments ago. */
static int spin_start(const sr_consumer *c, spin_episode *ep)
{
    double now = sr_now(), window = c->spin * 20 > 0.002 ? c->spin * 20 : 0.002;
    if (c->spin <= 0 || c->last_progress < 0 || now - c->last_progress >= window)
        return 0;
    ep->until = now + c->spin;
    ep->next_liveness = now + SPIN_LIVENESS_EVERY;
    ep->state = sr_header_u32(c->s, SR_OFF_STATE);
    ep->writers_ended = sr_header_u32(c->s, SR_OFF_WRITERS_ENDED);
    ep->turns = 0;
    return 1;
}

/* One turn of the spin (nothing was there to take): 1 look again, 0 go to sleep. */
static int spin_turn(const sr_consumer *c, spin_episode *ep, sr_error *e)
{
    double now = sr_now();
    if (now >= ep->until || sr_cancelled())
        return 0;
    if (sr_header_u32(c->s, SR_OFF_STATE) != ep->state ||
        sr_header_u32(c->s, SR_OFF_WRITERS_ENDED) != ep->writers_ended)
        return 0;
    if (now >= ep->next_liveness) {
        ep->next_liveness = now + SPIN_LIVENESS_EVERY;
        uint32_t writers;
        if (sem_getval(c->s, SR_WRITERS, &writers, e) < 0)
            return -1;
        if (writers == 0)
            return 0;
    }
    ep->turns++;
    if (c->one_cpu || ep->turns % 16 == 0)
        sched_yield();
    else {
#if defined(__x86_64__) || defined(__i386__)
        __builtin_ia32_pause(); /* the CPU's spin-wait hint */
#endif
    }
    return 1;
}

void sr_consumer_free(sr_consumer *c)
{
    free(c->order);
    c->order = NULL;
}

void sr_batch_free(sr_batch *b)
{
    free(b->frames);
    free(b->data);
    memset(b, 0, sizeof *b);
}

/* Frames waiting according to the header (DATA published - consumed): a hint that
 * costs no system call; it may be stale and does not count END/FINAL. The semop is
 * the authority. */
static uint32_t waiting_hint(const sr_consumer *c)
{
    uint64_t pub = sr_header_u64(c->s, SR_OFF_FRAMES_PUBLISHED);
    uint64_t con = sr_header_u64(c->s, SR_OFF_FRAMES_CONSUMED);
    uint64_t w = pub > con ? pub - con : 0;
    return w < c->max_batch ? (uint32_t)w : c->max_batch;
}

static int try_take(sr_consumer *c, uint32_t k, sr_error *e)
{
    struct sembuf ops[2] = {op(SR_FILLED, -(int)k, 1), op(SR_READ_MUTEX, -1, 1)};
    return sem_apply(c->s, ops, 2, WAIT_NOWAIT, e);
}

/* Frees `consumed` slots, leaves the rest published, releases the read mutex. */
static int release(sr_consumer *c, uint32_t tail, uint32_t taken, uint32_t consumed,
                   uint64_t frames, uint64_t bytes, sr_error *e)
{
    sr_session *s = c->s;
    uint32_t new_tail = (tail + consumed) % s->slots;
    add64(s, SR_OFF_FRAMES_CONSUMED, frames);
    add64(s, SR_OFF_BYTES_CONSUMED, bytes);
    put32(s, SR_OFF_READ_MUTEX_HOLDER, 0);
    struct sembuf ops[5];
    size_t n = 0;
    ops[n++] = op(SR_FILLED, (int)taken, 1); /* cancel the undo of the take ... */
    if (consumed > 0)
        ops[n++] = op(SR_FILLED, -(int)consumed, 0); /* ... keeping what we consumed */
    if (new_tail != tail)
        ops[n++] = op(SR_TAIL, (int)new_tail - (int)tail, 0);
    if (consumed > 0)
        ops[n++] = op(SR_FREE, (int)consumed, 0); /* the slots are the writers' again */
    ops[n++] = op(SR_READ_MUTEX, +1, 1);
    /* It only gives back: IPC_NOWAIT, a would-wait is corruption (Rust's why texts). */
    const char *why =
        consumed == 0 ? "put the FINAL frame back for the other readers and release the read mutex"
        : consumed < taken
            ? "free the slots before FINAL (TAIL moves, FREE grows), put FINAL back, release the "
              "mutex"
            : "free the slots: TAIL moves, FREE grows, read mutex released";
    if (sem_apply_now(s, ops, n, why, e) < 0)
        return -1;
    if (!s->shared) {
        c->have_tail = 1;
        c->tail = new_tail;
    }
    return 0;
}

static int tail_of(sr_consumer *c, uint32_t k, uint32_t *tail, sr_error *e)
{
    sr_session *s = c->s;
    put32(s, SR_OFF_READ_MUTEX_HOLDER, (uint32_t)s->pid);
    uint32_t t = c->tail;
    if (!c->have_tail && batch_start(s, SIDE_READER, k, &t, e) < 0) {
        sr_error ignored;
        (void)release(c, 0, k, 0, 0, 0, &ignored);
        return -1;
    }
    if (t >= s->slots) {
        sr_error ignored;
        (void)release(c, 0, k, 0, 0, 0, &ignored);
        return err_corrupt(e, s->key, "TAIL is %u but the ring has %u slots", t, s->slots);
    }
    *tail = t;
    return 0;
}

/* While the ring is empty: fail (exit 4) if every writer is gone. Gone for good
 * only if nothing is left to deliver either (FILLED = 0, which also means no FINAL:
 * FINAL is never consumed), confirmed under both mutexes. The header's state is no
 * evidence: a writer can die between setting it and publishing FINAL. */
static int check_writers(sr_consumer *c, const sr_snapshot *n, sr_error *e)
{
    sr_session *s = c->s;
    if (n->sems[SR_WRITERS] == 0 && n->sems[SR_FILLED] == 0) {
        sr_snapshot m;
        int got;
        if (sr_locked_snapshot(s, &m, &got, e) < 0)
            return -1;
        if (got && m.sems[SR_WRITERS] == 0 && m.sems[SR_FILLED] == 0)
            return err_peer_gone(e, s->key,
                                 "the writer left before the end of its stream (interrupted, "
                                 "killed or crashed) (%u writer(s) lost); delivered %" PRIu64 " frames, %" PRIu64
                                 " bytes, every one complete and in order",
                                 sr_lost_writers(&m), c->frames, c->bytes);
    }
    if (!c->said_stopped) {
        char list[256];
        if (stopped_peers(s, SR_ROLE_WRITER, list, sizeof list) > 0) {
            sr_note("writer pid %s is stopped (Ctrl-Z or SIGSTOP); waiting until it "
                    "continues (`fg`, or `kill -CONT PID`)", list);
            c->said_stopped = 1;
        }
    }
    return 0;
}

/* Takes k published frames and the read mutex: *tail, *k. (Rust: first an
 * IPC_NOWAIT take of min(hint, batch) when the hint is > 0; otherwise (or if it
 * fails) a 100 ms semtimedop for ONE frame, then, holding the mutex, one more
 * IPC_NOWAIT take of up to hint-1 more; after a timeout with nothing taken, GETALL:
 * take min(FILLED, batch) if FILLED > 0, else check for Ctrl-C... and dead writers.) */
static int acquire_frames(sr_consumer *c, uint32_t *tail, uint32_t *k_out, sr_error *e)
{
    sr_session *s = c->s;
    spin_episode ep = {0, 0, 0, 0, 0};
    int spinning = spin_start(c, &ep);
    for (;;) {
        uint32_t hint = waiting_hint(c);
        if (hint > 0) {
            int r = try_take(c, hint, e);
            if (r < 0)
                return -1;
            if (r == 1) {
                *k_out = hint;
                return tail_of(c, hint, tail, e);
            }
        }
        /* While the writer is active: watch the counters a moment before sleeping. */
        if (spinning) {
            int t = spin_turn(c, &ep, e);
            if (t < 0)
                return -1;
            if (t > 0)
                continue;
            spinning = 0;
        }
        if (sr_cancelled())
            return err_interrupted(e, "while waiting for data");
        /* Sleep until one frame is published (returns at once if one is). */
        struct sembuf ops[2] = {op(SR_FILLED, -1, 1), op(SR_READ_MUTEX, -1, 1)};
        int r = sem_apply(s, ops, 2, WAIT_POLL, e);
        if (r < 0)
            return -1;
        if (r == 1) {
            /* We hold the mutex and one frame; take the others that are waiting too,
             * or a reader woken for each frame would throw batching away. */
            uint32_t h = waiting_hint(c);
            uint32_t more = h > 1 ? h - 1 : 0;
            if (more > c->max_batch - 1)
                more = c->max_batch - 1;
            uint32_t k = 1;
            if (more > 0) {
                struct sembuf m = op(SR_FILLED, -(int)more, 1);
                int rm = sem_apply(s, &m, 1, WAIT_NOWAIT, e);
                if (rm < 0)
                    return -1;
                if (rm == 1)
                    k += more;
            }
            *k_out = k;
            return tail_of(c, k, tail, e);
        }
        /* A whole poll interval without data (or a signal): look at everything. */
        sr_snapshot n;
        if (sr_snapshot_get(s, &n, e) < 0)
            return -1;
        uint32_t filled = n.sems[SR_FILLED];
        if (filled > 0) {
            uint32_t k = filled < c->max_batch ? filled : c->max_batch;
            int rt = try_take(c, k, e);
            if (rt < 0)
                return -1;
            if (rt == 1) {
                *k_out = k;
                return tail_of(c, k, tail, e);
            }
        } else if (check_writers(c, &n, e) < 0) {
            return -1;
        }
    }
}

static sr_order *order_of(sr_consumer *c, uint32_t writer)
{
    for (size_t i = 0; i < c->norder; i++)
        if (c->order[i].writer == writer)
            return &c->order[i];
    if (c->norder == c->order_cap) {
        size_t cap = c->order_cap ? c->order_cap * 2 : 8;
        sr_order *o = realloc(c->order, cap * sizeof *o);
        if (!o)
            return NULL;
        c->order = o;
        c->order_cap = cap;
    }
    sr_order *o = &c->order[c->norder++];
    o->writer = writer;
    o->seq = 0;
    o->offset = 0;
    return o;
}

static int batch_reserve(sr_batch *b, size_t bytes)
{
    if (b->len + bytes > b->cap) {
        size_t cap = b->cap ? b->cap : 65536;
        while (cap < b->len + bytes)
            cap *= 2;
        unsigned char *d = realloc(b->data, cap);
        if (!d)
            return -1;
        b->data = d;
        b->cap = cap;
    }
    if (b->nframes == b->frames_cap) {
        size_t cap = b->frames_cap ? b->frames_cap * 2 : 64;
        sr_delivered *f = realloc(b->frames, cap * sizeof *f);
        if (!f)
            return -1;
        b->frames = f;
        b->frames_cap = cap;
    }
    return 0;
}

/* Copies slot tail+j out and validates it: every byte of the segment is untrusted.
 * The header is copied out once; the length is checked against the slot; the
 * payload is copied out; the CRC is checked on OUR copy, so the bytes checked are
 * the bytes delivered whatever anyone does to the slot meanwhile. Returns the kind,
 * or -1. */
static int take_slot(sr_consumer *c, uint32_t tail, uint32_t j, sr_batch *b, sr_error *e)
{
    sr_session *s = c->s;
    uint32_t index = (tail + j) % s->slots;
    const unsigned char *at = s->base + slot_offset(s, index);
    size_t cap = sr_capacity(s);
    unsigned char h[SR_FRAME_HEADER];
    memcpy(h, at, SR_FRAME_HEADER);
    uint32_t len = get_le32(h), kind = get_le32(h + 4);
    if (len > cap)
        return err_corrupt(e, s->key, "slot %u: frame length %u exceeds the slot", index, len);
    if (kind < SR_KIND_DATA || kind > SR_KIND_FINAL)
        return err_corrupt(e, s->key, "slot %u: unknown frame kind %u", index, kind);
    /* END and FINAL frames carry no payload (PROTOCOL.md section 5): bytes there are
     * not the stream's. Version 3 refuses them as corrupt rather than deliver or drop
     * them (Rust: consumer::take_slot). */
    if (kind != SR_KIND_DATA && len != 0)
        return err_corrupt(e, s->key,
                           "slot %u: an END/FINAL frame with %u payload bytes (it carries none)",
                           index, len);
    uint64_t seq = get_le64(h + 8), offset = get_le64(h + 16);
    uint32_t writer = get_le32(h + 24), stored = get_le32(h + 28);
    if (batch_reserve(b, len) < 0)
        return sr_fail(e, SR_EXIT_OS, NULL, "out of memory for a batch of %u bytes", len);
    /* (No copy for an empty frame: b->data may still be NULL, and memcpy must not
     * be given a null pointer even for 0 bytes.) */
    const unsigned char *mine = len ? b->data + b->len : at + SR_FRAME_HEADER;
    if (len)
        memcpy(b->data + b->len, at + SR_FRAME_HEADER, len);
    uint32_t computed = sr_crc32c(sr_crc32c(0, h, 28), mine, len);
    if (computed != stored)
        return err_corrupt(e, s->key,
                           "slot %u: checksum mismatch (stored 0x%08x, computed 0x%08x)", index,
                           stored, computed);
    /* Order: a writer's frames arrive in its order. With one reader (a byte stream)
     * without gaps, and the offsets add up (END/FINAL carry the totals, so they
     * must match exactly too); with many readers each takes some, so only "the
     * sequence number grows". */
    sr_order *o = order_of(c, writer);
    if (!o)
        return sr_fail(e, SR_EXIT_OS, NULL, "out of memory");
    int in_order = s->shared ? seq >= o->seq : (seq == o->seq && offset == o->offset);
    if (!in_order)
        return err_corrupt(e, s->key,
                           "writer %u frame %" PRIu64 " (offset %" PRIu64 ") arrived when %" PRIu64
                           " (offset %" PRIu64 ") was due",
                           writer, seq, offset, o->seq, o->offset);
    if (kind == SR_KIND_DATA) {
        o->seq = seq + 1;
        o->offset = offset + len;
        sr_delivered *d = &b->frames[b->nframes++];
        d->writer = writer;
        d->seq = seq;
        d->start = b->len;
        d->end = b->len + len;
        b->len += len;
    }
    return (int)kind;
}

int sr_recv(sr_consumer *c, sr_batch *b, int *eos, sr_error *e)
{
    b->nframes = 0;
    b->len = 0;
    *eos = 0;
    uint32_t tail = 0, k = 0;
    if (acquire_frames(c, &tail, &k, e) < 0)
        return -1;
    spin_progress(c);
    uint32_t consumed = 0;
    uint64_t bytes = 0;
    int failure = 0;
    sr_error fe;
    for (uint32_t j = 0; j < k; j++) {
        size_t before = b->len;
        int kind = take_slot(c, tail, j, b, &fe);
        if (kind < 0) {
            failure = 1;
            break;
        }
        if (kind == SR_KIND_DATA) {
            bytes += b->len - before;
            consumed++;
        } else if (kind == SR_KIND_END) {
            c->ended_writers++;
            consumed++;
        } else { /* FINAL: left in place (not consumed) so every reader sees it */
            c->ended_writers++;
            *eos = 1;
            break;
        }
    }
    if (release(c, tail, k, consumed, b->nframes, bytes, e) < 0)
        return -1;
    c->frames += b->nframes;
    c->bytes += bytes;
    if (failure) {
        *e = fe;
        return -1;
    }
    return 0;
}
