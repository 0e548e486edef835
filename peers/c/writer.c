/*
 * c-writer - send FILE (or standard input) through the System V shared-memory ring,
 * the C twin of the Rust `writer` (same options, exit codes and protocol).
 *
 * The handout's process A:                 This program:
 *   id = shmget(key, SIZE, IPC_CREAT|0666);   sr_open(): semget with IPC_EXCL, SETALL
 *   p = shmat(id, NULL, 0);                   of the signature, shmget with IPC_EXCL,
 *   strcpy(p, text);                          header, SETALL, first semop (section 5
 *                                             of shmring.c); then for every batch:
 *                                             take slots + mutex, copy, publish (one
 *                                             semop each); END/FINAL; wait for a
 *                                             reader to have come; leave.
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
    int persist, lines, remove, force;
    uint64_t delay_ms; /* --delay: slow motion, one frame per semop, this pause after each */
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
    "      --delay MS         slow motion for watching (shm-inspect --watch): publish one\n"
    "                         message per semop and pause MS milliseconds after each\n"
    "                         (0..=60000) [default: 0]\n"
    "      --remove           remove our segment and semaphore set at the key instead of\n"
    "                         sending: only objects that carry our magic, only if unused\n"
    "      --force            with --remove: also remove a finished stream that is still\n"
    "                         waiting for its reader (its bytes are lost)\n"
    "  -q, --quiet            no notes or summary on stderr (errors still print)\n"
    "  -h, --help             print help\n"
    "  -V, --version          print version\n"
    "\n"
    "Exit codes:\n"
    "  0    success: the whole stream was sent/received\n"
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

/* A flag given twice is refused, as clap does. */
static int flag(int *seen, const char *name, sr_error *e)
{
    if (*seen)
        return usage_error(e, "the argument '%s' cannot be used multiple times", name);
    *seen = 1;
    return 0;
}

/* The command line, the shape of the Rust writer's (clap): `--opt VALUE` or
 * `--opt=VALUE`, FILE anywhere, `--` ends the options; the same conflicts
 * (--remove with FILE, --persist or --lines; --force only with --remove). */
static int parse_args(int argc, char **argv, config *c, sr_error *e)
{
    int only_positional = 0;
    int seen_batch = 0, seen_mode = 0, seen_delay = 0, seen_quiet = 0;
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
            if (flag(&seen_quiet, "--quiet", e) < 0)
                return -1;
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
            if (flag(&c->persist, a, e) < 0)
                return -1;
            continue;
        }
        if (strcmp(a, "--lines") == 0) {
            if (flag(&c->lines, a, e) < 0)
                return -1;
            continue;
        }
        if (strcmp(a, "--remove") == 0) {
            if (flag(&c->remove, a, e) < 0)
                return -1;
            continue;
        }
        if (strcmp(a, "--force") == 0) {
            if (flag(&c->force, a, e) < 0)
                return -1;
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
                    !strcmp(name, "--mode") || !strcmp(name, "--delay");
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
        } else if (!strcmp(name, "--delay")) {
            dup = seen_delay;
            if (!dup && sr_parse_upto(value, 60000, &c->delay_ms) < 0)
                return usage_error(e, "invalid value '%s' for '--delay <MS>': a whole number of "
                                      "milliseconds in 0..=60000",
                                   value);
            seen_delay = 1;
        } else {
            dup = seen_mode;
            if (!dup && sr_parse_mode(value, &c->mode, e) < 0)
                return -1;
            seen_mode = 1;
        }
        if (dup)
            return usage_error(e, "the argument '%s' cannot be used multiple times", name);
    }
    if (c->remove && (c->file || c->persist || c->lines))
        return usage_error(e, "the argument '--remove' cannot be used with '%s'",
                           c->file ? "[FILE]" : c->persist ? "--persist" : "--lines");
    if (c->force && !c->remove)
        return usage_error(e, "the following required arguments were not provided: %s",
                           "--remove");
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

/* Whether the input can be read right now without blocking: poll(2) with a zero
 * timeout says data (or the end of input) is waiting. */
static int readable_now(int fd)
{
    struct pollfd pfd = {fd, POLLIN, 0};
    return poll(&pfd, 1, 0) > 0;
}

static int interrupted_after(sr_producer *p, sr_error *e)
{
    return sr_fail(e, SR_EXIT_INTERRUPTED, NULL, "interrupted (after sending %" PRIu64 " bytes)",
                   p->bytes);
}

/* After the last data frame: END or FINAL; then, unless the SESSION is persistent
 * (the creator's --persist, read from the header), wait until a reader has come, so
 * that `writer` + `reader` in either order always delivers. Version 3 (Rust:
 * finish_stream): a reader has come if one is counted (READERS), ever joined or
 * finished (the header), or took frames (FILLED went down since our END) - any of
 * them, once seen: a header counter can be scribbled on, and a reader that came and
 * went must not be waited for. *reader_came says which it was, for the summary. */
static int finish_stream(sr_producer *p, int *reader_came, sr_error *e)
{
    int was_final;
    if (sr_finish(p, &was_final, e) < 0)
        return -1;
    int said = 0, have_filled = 0;
    uint32_t filled_after_end = 0;
    for (;;) {
        sr_snapshot n;
        if (sr_check_readers_now(p, &n, e) < 0)
            return -1;
        uint32_t filled = n.sems[SR_FILLED];
        int took = have_filled && filled < filled_after_end;
        if (!have_filled) {
            filled_after_end = filled;
            have_filled = 1;
        }
        *reader_came = n.readers_joined > 0 || n.readers_finished > 0 || n.sems[SR_READERS] > 0 ||
                       took;
        if ((sr_header_u32(p->s, SR_OFF_FLAGS) & SR_FLAG_PERSIST) || *reader_came)
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

/* Bytes between the file's position (lseek(fd, 0, SEEK_CUR)) and its end (fstat's
 * st_size), or -1 if it cannot tell. */
static int64_t bytes_left(int fd)
{
    struct stat st;
    /* A size of 0 says nothing: /proc and /sys files report 0 and have content;
     * read them until read(2) returns 0 (an empty file ends at once that way). */
    if (fstat(fd, &st) != 0 || st.st_size == 0)
        return -1;
    off_t pos = lseek(fd, 0, SEEK_CUR);
    if (pos < 0)
        return -1;
    return st.st_size > pos ? (int64_t)(st.st_size - pos) : 0;
}

/* A regular file in byte-stream mode: each slot filled by read(2) straight from the
 * file. A batch is at most 512 KiB of slots (like the reader's), the batch limit, the
 * ring, and what is left of the file (version 3: its size says how many slots the
 * rest needs, so no 128-slot take for 12 bytes and no empty take at the end; a file
 * that changes size meanwhile is read as far as it goes, like cat does). Only a
 * regular file: the write mutex is held across the reads, which never block for long.
 * In slow motion (--delay) the batch is 1, as everywhere else. */
static int send_file(sr_producer *p, const config *c, int fd, sr_error *e)
{
    uint64_t cap = sr_capacity(p->s);
    uint64_t most = SR_MAX_BATCH_BYTES / p->s->slot_size;
    if (most < 1)
        most = 1;
    uint64_t batch = c->delay_ms ? 1 : c->batch;
    if (most > batch)
        most = batch;
    if (most > p->s->slots)
        most = p->s->slots;
    for (;;) {
        if (sr_cancelled())
            return interrupted_after(p, e);
        int64_t left = bytes_left(fd);
        uint64_t want = most;
        if (left == 0)
            return 0;
        if (left > 0) {
            want = ((uint64_t)left + cap - 1) / cap;
            if (want > most)
                want = most;
        }
        uint64_t sent;
        if (sr_send_from_fd(p, fd, (uint32_t)want, &sent, e) < 0)
            return -1;
        if (sent == 0)
            return 0;
        if (c->delay_ms && sr_pause_ms(c->delay_ms, e) < 0)
            return -1;
    }
}

/* Publishes the frames; in slow motion (--delay) one per semop with a pause after
 * each, taken outside the critical section (the mutex is free while we sleep). */
static int send_frames(sr_producer *p, const config *c, const sr_span *frames, size_t n,
                       sr_error *e)
{
    if (!c->delay_ms)
        return sr_send(p, frames, n, e);
    for (size_t i = 0; i < n; i++)
        if (sr_send(p, &frames[i], 1, e) < 0 || sr_pause_ms(c->delay_ms, e) < 0)
            return -1;
    return 0;
}

/* send_frames for bytes cut into payload-sized frames (the last possibly shorter). */
static int send_bytes(sr_producer *p, const config *c, const unsigned char *data, size_t n,
                      sr_error *e)
{
    if (!c->delay_ms)
        return sr_send_bytes(p, data, n, e);
    size_t cap = sr_capacity(p->s);
    for (size_t at = 0; at < n; at += cap) {
        sr_span one = {data + at, n - at < cap ? n - at : cap};
        if (send_frames(p, c, &one, 1, e) < 0)
            return -1;
    }
    return 0;
}

/* Anything else (a pipe, a terminal, or --lines): read what is there, then send it
 * (Rust: stream/writer.rs pump_input).
 * Byte stream: frame boundaries mean nothing, so whole frames are published and a
 * partial one is kept for the next read while more input is already waiting
 * (poll(2) with a zero timeout); only when nothing more is there does it go as it is
 * (an interactive line must not wait for the next one). This way `cat f | writer`
 * fills its slots like `writer f` does.
 * --lines: one frame per line, the '\n' included; a line longer than a frame's
 * payload is cut every payload from its start, whatever sizes the reads had; a last
 * line without '\n' is sent at end of input. */
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
    /* A pipe holds 64 KiB by default: one frame. Asking for 1 MiB (the unprivileged
     * maximum, /proc/sys/fs/pipe-max-size) with fcntl(F_SETPIPE_SZ) lets the process
     * feeding us run ahead, so a read finds whole frames waiting. A refusal changes
     * nothing but speed. */
    struct stat st;
    if (fstat(fd, &st) == 0 && S_ISFIFO(st.st_mode))
        (void)fcntl(fd, F_SETPIPE_SZ, 1 << 20);
    for (;;) {
        if (sr_cancelled()) {
            interrupted_after(p, e);
            goto out;
        }
        if (!c->lines && carry > 0 && !readable_now(fd)) {
            if (send_bytes(p, c, buf, carry, e) < 0)
                goto out;
            carry = 0;
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
            if (carry > 0 && send_bytes(p, c, buf, carry, e) < 0)
                goto out;
            break;
        }
        size_t filled = carry + (size_t)n;
        if (!c->lines) {
            size_t whole = filled / cap * cap;
            if (send_bytes(p, c, buf, whole, e) < 0)
                goto out;
            memmove(buf, buf + whole, filled - whole);
            carry = filled - whole;
            continue;
        }
        size_t complete = 0;
        for (size_t i = filled; i > 0; i--)
            if (buf[i - 1] == '\n') {
                complete = i;
                break;
            }
        if (complete == 0) {
            if (filled < cap) {
                carry = filled; /* no newline yet: keep accumulating */
                continue;
            }
            /* No newline, but a slot's worth or more: its whole slot-sized pieces go,
             * the rest waits, so the cuts fall every `cap` bytes from the start. */
            complete = filled / cap * cap;
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
        if (send_frames(p, c, spans, m, e) < 0)
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

/* The input file. A FIFO is opened with O_NONBLOCK, which returns at once even while
 * nobody has its other end open (a plain open(2) would block in the kernel, deaf to
 * Ctrl-C), then made blocking again with fcntl(F_SETFL): the writer waits for its
 * first bytes with poll(2), which blocks until a writer has come. Without FILE,
 * standard input, refused if it was closed at start (it would be sent as an empty
 * stream). (Rust: cli/stdio.rs open_input, require_open.) */
static int open_input(const config *c, int *fd, sr_error *e)
{
    if (!c->file) {
        *fd = 0;
        return sr_require_open(0, "standard input", e);
    }
    struct stat st;
    int f = -1;
    if (stat(c->file, &st) == 0 && S_ISFIFO(st.st_mode)) {
        f = open(c->file, O_RDONLY | O_NONBLOCK);
        if (f >= 0) {
            int fl = fcntl(f, F_GETFL);
            if (fl < 0 || fcntl(f, F_SETFL, fl & ~O_NONBLOCK) < 0) {
                int err = errno;
                close(f);
                errno = err;
                f = -1;
            }
        }
    } else {
        f = open(c->file, O_RDONLY);
    }
    if (f < 0) {
        int err = errno;
        return sr_fail(e, SR_EXIT_OS, NULL, "opening %s: %s (os error %d)", c->file,
                       strerror(err), err);
    }
    *fd = f;
    return 0;
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
    if (c.remove) {
        /* writer --remove (`make clean`): our unused objects at the key, nothing else. */
        char what[256];
        int r = sr_remove_session(c.key, c.force, what, sizeof what, &e);
        if (r < 0)
            return sr_report(&e);
        if (r == 0)
            sr_note("nothing of ours at key %s", sr_key_str(c.key));
        else
            sr_note("removed our objects at key %s: %s", sr_key_str(c.key), what);
        return 0;
    }
    if (!c.have_slot_size)
        c.slot_size = c.lines ? SR_DEFAULT_LINES_SLOT_SIZE : SR_DEFAULT_SLOT_SIZE;
    if (!c.have_slots)
        c.slots = sr_default_slots(c.slot_size);
    if (sr_check_geometry(c.slots, c.slot_size, &e) < 0)
        return sr_report(&e);
    if (sr_install_signals(&e) < 0)
        return sr_report(&e);
    int fd;
    if (open_input(&c, &fd, &e) < 0)
        return sr_report(&e);

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
    /* Slow motion (--delay) moves one frame per semop, so each step can be watched. */
    sr_producer_init(&p, &s, c.delay_ms ? 1 : c.batch);
    struct stat st;
    int rc, reader_came = 0;
    if (!c.lines && fstat(fd, &st) == 0 && S_ISREG(st.st_mode))
        rc = send_file(&p, &c, fd, &e);
    else
        rc = send_stream(&p, &c, fd, &e);
    if (rc == 0)
        rc = finish_stream(&p, &reader_came, &e);

    if (rc < 0) {
        /* Leave after a failure, keeping the original error (a failure to leave is
         * only a note: the kernel's SEM_UNDO un-counts us at exit anyway). A corrupt
         * session is removed; a set removed from outside takes our segment with it. */
        sr_leave_after(&s, &e);
        sr_detach(&s);
        return sr_report(&e);
    }
    int how;
    if (sr_leave(&s, 1, &how, &e) < 0) {
        sr_detach(&s);
        return sr_report(&e);
    }
    /* A finished stream that no reader has come for stays in the kernel (--persist). */
    int waits_for_reader = how == SR_LEFT && !reader_came;
    if (waits_for_reader)
        sr_note("the stream stays at key %s until a reader takes it (run `reader --key %s`)",
                sr_key_str(c.key), sr_key_str(c.key));
    sr_detach(&s);
    sr_summary(p.bytes, p.seq, sr_now() - start, how, waits_for_reader, s.owner);
    return 0;
}
