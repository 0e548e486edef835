/*
 * c-writer - send FILE (or standard input) through the System V shared-memory ring,
 * the C twin of the Rust `writer` (same options, exit codes and protocol).
 *
 * The handout's process A:                 This program:
 *   id = shmget(key, SIZE, IPC_CREAT|0666);   sr_open(): semget + shmget with IPC_EXCL,
 *   p = shmat(id, NULL, 0);                   header, SETALL, first semop (section 5
 *   strcpy(p, text);                          of shmring.c); then for every batch:
 *                                             take slots + mutex, copy, publish (one
 *                                             semop each); END/FINAL; leave.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include "shmring.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>


typedef struct {
    key_t key;
    int have_key;
    uint32_t slots, slot_size;
    int have_slots, have_slot_size;
    uint32_t batch;
    unsigned mode;
    int persist, lines;
    const char *file;
} config;

static const char *help_text =
    "Send FILE (or standard input) byte for byte through a System V shared-memory\n"
    "segment to a reader (Rust `reader` or `c-reader`), synchronised by System V\n"
    "semaphores. Either side may start first. Without --persist the writer, once done,\n"
    "waits until a reader has joined; the last process to leave removes the segment\n"
    "and the semaphore set. With --lines each line is a message and several writers\n"
    "may share the key.\n"
    "\n"
    "Usage: c-writer [OPTIONS] [FILE]\n"
    "\n"
    "Options:\n"
    "      --key KEY          IPC key: 0x1234abcd, decimal, or path:FILE (ftok(FILE, 'S')).\n"
    "                         Default: 0x53 and the low 24 bits of your uid\n"
    "                         (0x530003e8 for uid 1000), one per user\n"
    "      --slots N          slots in the ring (1..=32767) if this writer creates it.\n"
    "                         Default: as many as fit in 4 MiB, between 16 and 4096\n"
    "      --slot-size BYTES  bytes per slot incl. the 32-byte frame header; a multiple\n"
    "                         of 64 (K/M suffixes). Default 64K, or 8K with --lines\n"
    "      --batch N          most frames taken or published per semop [default: 256]\n"
    "      --mode OCTAL       permission bits of the objects it creates [default: 600]\n"
    "      --persist          finish without waiting for a reader\n"
    "      --lines            one message per line; share the key with other --lines writers\n"
    "  -q, --quiet            no notes or summary on stderr (errors still print)\n"
    "  -h, --help             print help\n"
    "  -V, --version          print version\n"
    "\n"
    "Exit codes:\n"
    "  0    success: the whole stream was sent\n"
    "  1    other operating-system or I/O error\n"
    "  2    bad command line (invalid key, size, count, mode)\n"
    "  3    conflict: something at the key we must not use (not ours, or busy)\n"
    "  4    the peer died, the stream was cut short, or the objects were removed\n"
    "  5    permission denied by the kernel\n"
    "  6    corrupt data in the segment (bad header or checksum)\n"
    "  7    a kernel limit was reached (shmmax, shmmni, semmni...)\n"
    "  130  interrupted by SIGINT/SIGTERM/SIGHUP (after cleaning up)\n";

static int usage_error(sr_error *e, const char *fmt, const char *arg)
{
    char msg[512];
    snprintf(msg, sizeof msg, fmt, arg);
    return sr_fail(e, SR_EXIT_USAGE, "nothing was created; see `c-writer --help`", "%s", msg);
}

/* The command line, the shape of the Rust writer's (clap): `--opt VALUE` or
 * `--opt=VALUE`, FILE anywhere, `--` ends the options. */
static int parse_args(int argc, char **argv, config *c, sr_error *e)
{
    int only_positional = 0;
    int seen_batch = 0, seen_mode = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (only_positional || a[0] != '-' || strcmp(a, "-") == 0) {
            if (c->file)
                return usage_error(e, "unexpected argument '%s' found", a);
            c->file = a;
            continue;
        }
        if (strcmp(a, "--") == 0) {
            only_positional = 1;
            continue;
        }
        if (strcmp(a, "-q") == 0 || strcmp(a, "--quiet") == 0) {
            sr_quiet = 1;
            continue;
        }
        if (strcmp(a, "-h") == 0 || strcmp(a, "--help") == 0) {
            fputs(help_text, stdout);
            exit(0);
        }
        if (strcmp(a, "-V") == 0 || strcmp(a, "--version") == 0) {
            printf("c-writer 0.1.0 (protocol layout version %u)\n", SR_VERSION);
            exit(0);
        }
        if (strcmp(a, "--persist") == 0) {
            c->persist = 1;
            continue;
        }
        if (strcmp(a, "--lines") == 0) {
            c->lines = 1;
            continue;
        }
        /* Options with a value. */
        char name[64];
        const char *value = NULL;
        const char *eq = strchr(a, '=');
        size_t len = eq ? (size_t)(eq - a) : strlen(a);
        if (len >= sizeof name)
            return usage_error(e, "unexpected argument '%s' found", a);
        memcpy(name, a, len);
        name[len] = '\0';
        int known = !strcmp(name, "--key") || !strcmp(name, "--slots") ||
                    !strcmp(name, "--slot-size") || !strcmp(name, "--batch") ||
                    !strcmp(name, "--mode");
        if (!known)
            return usage_error(e, "unexpected argument '%s' found", a);
        if (eq)
            value = eq + 1;
        else if (i + 1 < argc)
            value = argv[++i];
        else
            return usage_error(e, "a value is required for '%s' but none was supplied", name);
        int dup = 0;
        if (!strcmp(name, "--key")) {
            dup = c->have_key;
            if (!dup && sr_parse_key(value, &c->key, e) < 0)
                return -1;
            c->have_key = 1;
        } else if (!strcmp(name, "--slots")) {
            dup = c->have_slots;
            if (!dup && sr_parse_count(value, &c->slots, e) < 0)
                return -1;
            c->have_slots = 1;
        } else if (!strcmp(name, "--slot-size")) {
            dup = c->have_slot_size;
            if (!dup && sr_parse_size(value, &c->slot_size, e) < 0)
                return -1;
            c->have_slot_size = 1;
        } else if (!strcmp(name, "--batch")) {
            dup = seen_batch;
            if (!dup && sr_parse_batch(value, &c->batch, e) < 0)
                return -1;
            seen_batch = 1;
        } else {
            dup = seen_mode;
            if (!dup && sr_parse_mode(value, &c->mode, e) < 0)
                return -1;
            seen_mode = 1;
        }
        if (dup)
            return usage_error(e, "the argument '%s' cannot be used multiple times", name);
    }
    return 0;
}

/* Waits until the input has data (or end of file) with poll(2), 100 ms at a time,
 * so that a Ctrl-C is noticed even while nobody types. */
static int wait_readable(int fd, sr_error *e)
{
    for (;;) {
        if (sr_cancelled())
            return sr_fail(e, SR_EXIT_INTERRUPTED, NULL, "interrupted (while waiting for input)");
        struct pollfd pfd = {fd, POLLIN, 0};
        int r = poll(&pfd, 1, SR_POLL_MS);
        if (r > 0)
            return 0;
        if (r < 0 && errno != EINTR)
            return sr_fail(e, SR_EXIT_OS, NULL, "waiting for input (poll): %s (os error %d)",
                           strerror(errno), errno);
    }
}

static int interrupted_after(sr_producer *p, sr_error *e)
{
    return sr_fail(e, SR_EXIT_INTERRUPTED, NULL, "interrupted (after sending %" PRIu64 " bytes)",
                   p->bytes);
}

/* After the last data frame: END or FINAL; then, unless the SESSION is persistent
 * (the creator's --persist, read from the header), wait until a reader has joined,
 * so that `writer` + `reader` in either order always delivers. */
static int finish_stream(sr_producer *p, sr_error *e)
{
    int was_final;
    if (sr_finish(p, &was_final, e) < 0)
        return -1;
    int said = 0;
    for (;;) {
        sr_snapshot n;
        if (sr_check_readers_now(p, &n, e) < 0)
            return -1;
        if ((sr_header_u32(p->s, SR_OFF_FLAGS) & SR_FLAG_PERSIST) || n.readers_joined > 0)
            return 0;
        if (!said) {
            sr_note("all sent; waiting for a reader on key %s to take it (or use --persist)",
                    sr_key_str(p->s->key));
            said = 1;
        }
        if (sr_cancelled())
            return sr_fail(e, SR_EXIT_INTERRUPTED, NULL,
                           "interrupted (while waiting for a reader; the stream was never read)");
        sr_sleep_ms(SR_POLL_MS);
    }
}

/* A regular file in byte-stream mode: each slot filled by one read(2) straight from
 * the file, up to 512 KiB of slots per batch. Only a regular file: the write mutex
 * is held across the reads, which must never block for long. */
static int send_file(sr_producer *p, const config *c, int fd, sr_error *e)
{
    uint32_t want = SR_MAX_BATCH_BYTES / p->s->slot_size;
    if (want < 1)
        want = 1;
    if (want > c->batch)
        want = c->batch;
    for (;;) {
        if (sr_cancelled())
            return interrupted_after(p, e);
        uint64_t sent;
        if (sr_send_from_fd(p, fd, want, &sent, e) < 0)
            return -1;
        if (sent == 0)
            return 0;
    }
}

/* Anything else (a pipe, a terminal, or --lines): read what is there, then send it.
 * --lines: one frame per line, the '\n' included; a line longer than a frame's
 * payload is cut into payload-sized pieces (Rust: as soon as a slot's worth without
 * a newline has accumulated, everything accumulated is sent, the last piece
 * possibly shorter); a last line without '\n' is sent at end of input. */
static int send_stream(sr_producer *p, const config *c, int fd, sr_error *e)
{
    size_t cap = sr_capacity(p->s);
    size_t chunk = cap * (size_t)c->batch;
    if (chunk > (256u << 10))
        chunk = 256u << 10;
    if (chunk < cap)
        chunk = cap;
    unsigned char *buf = malloc(chunk);
    sr_span *spans = NULL;
    size_t spans_cap = 0;
    size_t carry = 0;
    int rc = -1;
    if (!buf) {
        sr_fail(e, SR_EXIT_OS, NULL, "out of memory for a %zu-byte input buffer", chunk);
        goto out;
    }
    for (;;) {
        if (sr_cancelled()) {
            interrupted_after(p, e);
            goto out;
        }
        if (wait_readable(fd, e) < 0)
            goto out;
        ssize_t n = read(fd, buf + carry, chunk - carry);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            sr_fail(e, SR_EXIT_OS, NULL, "reading the input: %s (os error %d)", strerror(errno),
                    errno);
            goto out;
        }
        if (n == 0) {
            /* A signal that arrived while the input ended must not be lost. */
            if (sr_cancelled()) {
                interrupted_after(p, e);
                goto out;
            }
            if (carry > 0 && sr_send_bytes(p, buf, carry, e) < 0)
                goto out;
            break;
        }
        if (!c->lines) {
            if (sr_send_bytes(p, buf, (size_t)n, e) < 0)
                goto out;
            continue;
        }
        size_t filled = carry + (size_t)n, complete = 0;
        for (size_t i = filled; i > 0; i--)
            if (buf[i - 1] == '\n') {
                complete = i;
                break;
            }
        if (complete == 0) {
            if (filled >= cap || filled == chunk) {
                complete = filled; /* no newline yet, but a slot's worth: send it */
            } else {
                carry = filled;
                continue;
            }
        }
        size_t m = 0;
        for (size_t at = 0; at < complete;) {
            size_t end = at;
            while (end < complete && buf[end] != '\n')
                end++;
            if (end < complete)
                end++; /* the '\n' belongs to its line */
            for (size_t piece = at; piece < end; piece += cap) {
                if (m == spans_cap) {
                    size_t nc = spans_cap ? spans_cap * 2 : 256;
                    sr_span *ns = realloc(spans, nc * sizeof *ns);
                    if (!ns) {
                        sr_fail(e, SR_EXIT_OS, NULL, "out of memory");
                        goto out;
                    }
                    spans = ns;
                    spans_cap = nc;
                }
                spans[m].p = buf + piece;
                spans[m].n = end - piece < cap ? end - piece : cap;
                m++;
            }
            at = end;
        }
        if (sr_send(p, spans, m, e) < 0)
            goto out;
        memmove(buf, buf + complete, filled - complete);
        carry = filled - complete;
    }
    rc = 0;
out:
    free(buf);
    free(spans);
    return rc;
}

static void summary(const char *how, uint64_t bytes, uint64_t frames, double secs)
{
    double rate = secs > 0 ? (double)bytes / secs / 1e6 : 0.0;
    sr_note("%" PRIu64 " bytes, %" PRIu64 " messages in %.3f s (%.1f MB/s)%s", bytes, frames, secs,
            rate, how);
}

int main(int argc, char **argv)
{
    sr_prog = "c-writer";
    config c;
    memset(&c, 0, sizeof c);
    c.batch = SR_DEFAULT_BATCH;
    c.mode = 0600;
    sr_error e;
    if (parse_args(argc, argv, &c, &e) < 0)
        return sr_report(&e);
    if (!c.have_key)
        c.key = sr_default_key();
    if (!c.have_slot_size)
        c.slot_size = c.lines ? SR_DEFAULT_LINES_SLOT_SIZE : SR_DEFAULT_SLOT_SIZE;
    if (!c.have_slots)
        c.slots = sr_default_slots(c.slot_size);
    if (sr_check_geometry(c.slots, c.slot_size, &e) < 0)
        return sr_report(&e);
    if (sr_install_signals(&e) < 0)
        return sr_report(&e);
    int fd = 0;
    if (c.file) {
        fd = open(c.file, O_RDONLY);
        if (fd < 0) {
            int err = errno;
            sr_fail(&e, SR_EXIT_OS, NULL, "opening %s: %s (os error %d)", c.file, strerror(err),
                    err);
            return sr_report(&e);
        }
    }

    sr_session s;
    sr_open_opts o = {c.key, SR_ROLE_WRITER, c.slots, c.slot_size, c.mode, c.persist, c.lines};
    if (sr_open(&s, &o, &e) < 0)
        return sr_report(&e);
    if (s.created)
        sr_note("created key %s (shmid %d, semid %d): %u slots of %u bytes", sr_key_str(c.key),
                s.shmid, s.semid, s.slots, s.slot_size);
    else
        sr_note("joined key %s as writer %u (shmid %d, semid %d)", sr_key_str(c.key), s.id,
                s.shmid, s.semid);

    double start = sr_now();
    sr_producer p;
    sr_producer_init(&p, &s, c.batch);
    struct stat st;
    int rc;
    if (!c.lines && fstat(fd, &st) == 0 && S_ISREG(st.st_mode))
        rc = send_file(&p, &c, fd, &e);
    else
        rc = send_stream(&p, &c, fd, &e);
    if (rc == 0)
        rc = finish_stream(&p, &e);

    int how;
    if (rc < 0) {
        /* Leave after a failure, keeping the original error (a failure to leave is
         * only a note: the kernel's SEM_UNDO un-counts us at exit anyway). A corrupt
         * session is removed; a set removed from outside takes our segment with it. */
        sr_leave_after(&s, &e);
        sr_detach(&s);
        return sr_report(&e);
    }
    if (sr_leave(&s, 1, &how, &e) < 0) {
        sr_detach(&s);
        return sr_report(&e);
    }
    if (how == SR_LEFT && (sr_header_u32(&s, SR_OFF_FLAGS) & SR_FLAG_PERSIST))
        sr_note("the stream stays at key %s until a reader takes it (`reader --key %s`)",
                sr_key_str(c.key), sr_key_str(c.key));
    sr_detach(&s);
    summary(how == SR_REMOVED ? "; removed the segment and semaphore set"
            : how == SR_LEFT  ? "; left the objects to the peer that remains"
                              : "",
            p.bytes, p.seq, sr_now() - start);
    return 0;
}
