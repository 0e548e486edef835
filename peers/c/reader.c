/*
 * c-reader - write what writers send through the System V shared-memory ring to
 * standard output; the C twin of the Rust `reader`.
 *
 * The handout's process B:                 This program:
 *   id = shmget(key, SIZE, 0666);             sr_open(): look, classify, wait for
 *   p = shmat(id, NULL, 0);                   sem_otime != 0, join under both mutexes;
 *   printf("%s", p);                          then for every batch: take frames +
 *                                             mutex, copy out, check the CRC, release
 *                                             (one semop each), and only then write.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include "shmring.h"

#include <errno.h>
#include <inttypes.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>


static const char *help_text =
    "Receive the stream a writer (Rust `writer` or `c-writer`) sends through a System V\n"
    "shared-memory segment and write it to standard output; waits for the writer if it\n"
    "has not started yet.\n"
    "\n"
    "Usage: c-reader [OPTIONS]\n"
    "\n"
    "Options:\n"
    "      --key KEY    IPC key: 0x1234abcd, decimal, or path:FILE (ftok(FILE, 'S')).\n"
    "                   Default: 0x53 and the low 24 bits of your uid (0x530003e8 for\n"
    "                   uid 1000), one per user\n"
    "      --tag        prefix each message with \"[writer N] \" (for --lines writers)\n"
    "      --batch N    most frames taken per semop [default: 256]\n"
    "      --spin MICROS  spin up to MICROS microseconds (at most 1000000) watching for\n"
    "                   data before sleeping in semop, but only while the writer is\n"
    "                   active; 0 never spins [default: 50]\n"
    "      --delay MS   slow motion for watching: take one message per semop and pause\n"
    "                   MS milliseconds after each (0..=60000) [default: 0]\n"
    "  -q, --quiet      no notes or summary on stderr (errors still print)\n"
    "  -h, --help       print help\n"
    "  -V, --version    print version\n"
    "\n"
    "Exit codes:\n"
    "  0    success: the whole stream was received\n"
    "  1    other operating-system or I/O error (e.g. writing the output)\n"
    "  2    bad command line (invalid key or count)\n"
    "  3    conflict: something at the key we must not use (not ours, or a byte-stream\n"
    "       session that already has its reader)\n"
    "  4    the writer died, the stream was cut short, or the objects were removed\n"
    "  5    permission denied by the kernel\n"
    "  6    corrupt data in the segment (bad header or checksum)\n"
    "  7    a kernel limit was reached\n"
    "  130  interrupted by SIGINT/SIGTERM/SIGHUP (after cleaning up)\n";

typedef struct {
    key_t key;
    int have_key, tag;
    uint32_t batch;
    uint64_t spin_us, delay_ms;
} config;

static int usage_error(sr_error *e, const char *fmt, const char *arg)
{
    char msg[512];
    snprintf(msg, sizeof msg, fmt, arg);
    return sr_fail(e, SR_EXIT_USAGE, "nothing was created; see `c-reader --help`", "%s", msg);
}

/* The command line, the shape of the Rust reader's (clap): `--opt VALUE` or
 * `--opt=VALUE`; a flag or option given twice is refused. */
static int parse_args(int argc, char **argv, config *c, sr_error *e)
{
    int seen_batch = 0, seen_spin = 0, seen_delay = 0, seen_quiet = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (strcmp(a, "-q") == 0 || strcmp(a, "--quiet") == 0) {
            if (seen_quiet)
                return usage_error(e, "the argument '%s' cannot be used multiple times",
                                   "--quiet");
            seen_quiet = sr_quiet = 1;
            continue;
        }
        if (strcmp(a, "--tag") == 0) {
            if (c->tag)
                return usage_error(e, "the argument '%s' cannot be used multiple times", a);
            c->tag = 1;
            continue;
        }
        if (strcmp(a, "-h") == 0 || strcmp(a, "--help") == 0) {
            fputs(help_text, stdout);
            exit(0);
        }
        if (strcmp(a, "-V") == 0 || strcmp(a, "--version") == 0) {
            printf("c-reader 0.1.0 (protocol layout version %u)\n", SR_VERSION);
            exit(0);
        }
        const char *eq = strchr(a, '=');
        size_t len = eq ? (size_t)(eq - a) : strlen(a);
        const char *names[] = {"--key", "--batch", "--spin", "--delay"};
        int which = -1;
        for (int n = 0; n < 4; n++)
            if (len == strlen(names[n]) && strncmp(a, names[n], len) == 0)
                which = n;
        if (which < 0)
            return usage_error(e, "unexpected argument '%s' found", a);
        const char *value;
        if (eq)
            value = eq + 1;
        else if (i + 1 < argc)
            value = argv[++i];
        else
            return usage_error(e, "a value is required for '%s' but none was supplied",
                               names[which]);
        int *seen = which == 0 ? &c->have_key : which == 1 ? &seen_batch
                                             : which == 2 ? &seen_spin
                                                          : &seen_delay;
        if (*seen)
            return usage_error(e, "the argument '%s' cannot be used multiple times", names[which]);
        *seen = 1;
        if (which == 0 && sr_parse_key(value, &c->key, e) < 0)
            return -1;
        if (which == 1 && sr_parse_batch(value, &c->batch, e) < 0)
            return -1;
        if (which == 2 && sr_parse_upto(value, SR_MAX_SPIN_US, &c->spin_us) < 0)
            return usage_error(e, "invalid value '%s' for '--spin <MICROS>': a whole number of "
                                  "microseconds in 0..=1000000",
                               value);
        if (which == 3 && sr_parse_upto(value, 60000, &c->delay_ms) < 0)
            return usage_error(e, "invalid value '%s' for '--delay <MS>': a whole number of "
                                  "milliseconds in 0..=60000",
                               value);
    }
    return 0;
}

/* Writes everything, waiting for room with poll(2) (POLLOUT, 100 ms at a time) before
 * each write(2), so that a reader blocked on a full pipe (a consumer that stopped
 * reading) still notices Ctrl-C and SIGTERM, and gives up then, as the Rust reader
 * does (stream/output.rs): a signal asked to stop, and the stream is cut short. */
static int write_out(const unsigned char *p, size_t n, sr_error *e)
{
    while (n > 0) {
        if (sr_cancelled())
            return sr_fail(e, SR_EXIT_INTERRUPTED, NULL, "interrupted (while writing the output)");
        struct pollfd pfd = {1, POLLOUT, 0};
        int r = poll(&pfd, 1, SR_POLL_MS);
        if (r == 0 || (r < 0 && errno == EINTR))
            continue;
        if (r < 0) {
            int err = errno;
            return sr_fail(e, SR_EXIT_OS, NULL, "writing the output: %s (os error %d)",
                           strerror(err), err);
        }
        ssize_t w = write(1, p, n);
        if (w < 0) {
            if (errno == EINTR || errno == EAGAIN)
                continue;
            int err = errno;
            return sr_fail(e, SR_EXIT_OS, NULL, "writing the output: %s (os error %d)",
                           strerror(err), err);
        }
        if (w == 0)
            return sr_fail(e, SR_EXIT_OS, NULL, "writing the output: failed to write whole buffer");
        p += w;
        n -= (size_t)w;
    }
    return 0;
}

/* The batch's payloads to stdout in one write, with "[writer N] " before each message
 * if --tag. */
static int deliver(const sr_batch *b, int tag, unsigned char **buf, size_t *cap, sr_error *e)
{
    if (!tag)
        return write_out(b->data, b->len, e);
    size_t need = b->len + b->nframes * 24;
    if (need > *cap) {
        unsigned char *nb = realloc(*buf, need);
        if (!nb)
            return sr_fail(e, SR_EXIT_OS, NULL, "out of memory");
        *buf = nb;
        *cap = need;
    }
    size_t n = 0;
    for (size_t i = 0; i < b->nframes; i++) {
        const sr_delivered *d = &b->frames[i];
        n += (size_t)snprintf((char *)*buf + n, 24, "[writer %u] ", d->writer);
        if (d->end > d->start) /* an empty DATA frame: nothing to copy (data may be NULL) */
            memcpy(*buf + n, b->data + d->start, d->end - d->start);
        n += d->end - d->start;
    }
    return write_out(*buf, n, e);
}

int main(int argc, char **argv)
{
    sr_prog = "c-reader";
    config cfg = {0, 0, 0, SR_DEFAULT_BATCH, SR_DEFAULT_SPIN_US, 0};
    sr_error e;
    if (parse_args(argc, argv, &cfg, &e) < 0)
        return sr_report(&e);
    key_t key = cfg.have_key ? cfg.key : sr_default_key();
    /* A stdout closed at start would swallow the stream: refuse before joining. */
    if (sr_require_open(1, "standard output", &e) < 0)
        return sr_report(&e);
    if (sr_install_signals(&e) < 0)
        return sr_report(&e);

    sr_session s;
    sr_open_opts o = {key, SR_ROLE_READER, 1, 128, 0600, 0, 0};
    if (sr_open(&s, &o, &e) < 0)
        return sr_report(&e);
    sr_note("joined key %s as reader (shmid %d, semid %d)", sr_key_str(key), s.shmid, s.semid);

    double start = sr_now();
    sr_consumer c;
    /* Slow motion (--delay) takes one frame per semop, so each step can be watched. */
    sr_consumer_init(&c, &s, cfg.delay_ms ? 1 : cfg.batch);
    sr_consumer_set_spin(&c, cfg.spin_us);
    sr_batch b;
    memset(&b, 0, sizeof b);
    unsigned char *tagbuf = NULL;
    size_t tagcap = 0;
    int rc = 0;
    for (;;) {
        int eos = 0;
        int r = sr_recv(&c, &b, &eos, &e);
        /* Deliver what was taken even if a later frame of the batch failed. */
        sr_error oe;
        if (deliver(&b, cfg.tag, &tagbuf, &tagcap, &oe) < 0) {
            e = oe;
            rc = -1;
            break;
        }
        if (r < 0) {
            rc = -1;
            break;
        }
        if (eos)
            break;
        if (cfg.delay_ms && sr_pause_ms(cfg.delay_ms, &e) < 0) {
            rc = -1;
            break;
        }
    }
    free(tagbuf);
    sr_batch_free(&b);

    int how;
    if (rc < 0) {
        /* As the writer: a corrupt session is removed, an orphaned segment too. */
        sr_leave_after(&s, &e);
        sr_detach(&s);
        sr_consumer_free(&c);
        return sr_report(&e);
    }
    /* Writers that died without their END (shared sessions): the stream we got is
     * complete for the others, but not for them: exit 4 after leaving. */
    sr_snapshot n;
    int got = 0;
    if (sr_locked_snapshot(&s, &n, &got, &e) < 0 || (!got && sr_snapshot_get(&s, &n, &e) < 0)) {
        sr_leave_after(&s, &e);
        sr_detach(&s);
        sr_consumer_free(&c);
        return sr_report(&e);
    }
    uint32_t lost = sr_lost_writers(&n);
    if (sr_leave(&s, 1, &how, &e) < 0) {
        sr_detach(&s);
        sr_consumer_free(&c);
        return sr_report(&e);
    }
    sr_detach(&s);
    if (lost > 0) {
        sr_fail(&e, SR_EXIT_PEER_GONE, NULL,
                "key %s: %u writer(s) died before finishing; delivered %" PRIu64
                " frames (%" PRIu64 " bytes) that they had published, each complete",
                sr_key_str(key), lost, c.frames, c.bytes);
        snprintf(e.hint, sizeof e.hint,
                 "everything delivered before the failure is intact; `ipcs` should show nothing "
                 "left at %s (otherwise `make clean KEY=%s`)",
                 sr_key_str(key), sr_key_str(key));
        sr_consumer_free(&c);
        return sr_report(&e);
    }
    sr_summary(c.bytes, c.frames, sr_now() - start, how, 0, s.owner);
    sr_consumer_free(&c);
    return 0;
}
