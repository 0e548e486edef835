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

static int usage_error(sr_error *e, const char *fmt, const char *arg)
{
    char msg[512];
    snprintf(msg, sizeof msg, fmt, arg);
    return sr_fail(e, SR_EXIT_USAGE, "nothing was created; see `c-reader --help`", "%s", msg);
}

static int parse_args(int argc, char **argv, key_t *key, int *have_key, int *tag,
                      uint32_t *batch, sr_error *e)
{
    int seen_batch = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (strcmp(a, "-q") == 0 || strcmp(a, "--quiet") == 0) {
            sr_quiet = 1;
            continue;
        }
        if (strcmp(a, "--tag") == 0) {
            *tag = 1;
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
        int is_key = len == 5 && strncmp(a, "--key", 5) == 0;
        int is_batch = len == 7 && strncmp(a, "--batch", 7) == 0;
        if (!is_key && !is_batch)
            return usage_error(e, "unexpected argument '%s' found", a);
        const char *value;
        if (eq)
            value = eq + 1;
        else if (i + 1 < argc)
            value = argv[++i];
        else
            return usage_error(e, "a value is required for '%s' but none was supplied",
                               is_key ? "--key" : "--batch");
        if (is_key) {
            if (*have_key)
                return usage_error(e, "the argument '%s' cannot be used multiple times", "--key");
            if (sr_parse_key(value, key, e) < 0)
                return -1;
            *have_key = 1;
        } else {
            if (seen_batch)
                return usage_error(e, "the argument '%s' cannot be used multiple times", "--batch");
            if (sr_parse_batch(value, batch, e) < 0)
                return -1;
            seen_batch = 1;
        }
    }
    return 0;
}

/* Writes everything; a write(2) interrupted while BLOCKED (a full pipe) by Ctrl-C
 * gives up, otherwise the batch already taken out of the ring is written whole.
 * (Rust: its signal handler uses SA_RESTART, so a reader blocked on a full stdout
 * notices SIGTERM only once the consumer reads again; here it exits 130 at once.) */
static int write_out(const unsigned char *p, size_t n, sr_error *e)
{
    while (n > 0) {
        ssize_t w = write(1, p, n);
        if (w < 0) {
            if (errno == EINTR) {
                if (sr_cancelled())
                    return sr_fail(e, SR_EXIT_INTERRUPTED, NULL,
                                   "interrupted (while writing the output)");
                continue;
            }
            int err = errno;
            return sr_fail(e, SR_EXIT_OS, NULL, "writing the output: %s (os error %d)",
                           strerror(err), err);
        }
        p += w;
        n -= (size_t)w;
        /* A signal that arrives after some bytes went out makes write(2) return a
         * short count instead of EINTR: that, too, means we were blocked. */
        if (n > 0 && sr_cancelled())
            return sr_fail(e, SR_EXIT_INTERRUPTED, NULL, "interrupted (while writing the output)");
    }
    return 0;
}

/* The batch's payloads to stdout, with "[writer N] " before each message if --tag. */
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
        memcpy(*buf + n, b->data + d->start, d->end - d->start);
        n += d->end - d->start;
    }
    return write_out(*buf, n, e);
}

int main(int argc, char **argv)
{
    sr_prog = "c-reader";
    key_t key = 0;
    int have_key = 0, tag = 0;
    uint32_t batch = SR_DEFAULT_BATCH;
    sr_error e;
    if (parse_args(argc, argv, &key, &have_key, &tag, &batch, &e) < 0)
        return sr_report(&e);
    if (!have_key)
        key = sr_default_key();
    if (sr_install_signals(&e) < 0)
        return sr_report(&e);

    sr_session s;
    sr_open_opts o = {key, SR_ROLE_READER, 1, 128, 0600, 0, 0};
    if (sr_open(&s, &o, &e) < 0)
        return sr_report(&e);
    sr_note("joined key %s as reader (shmid %d, semid %d)", sr_key_str(key), s.shmid, s.semid);

    double start = sr_now();
    sr_consumer c;
    sr_consumer_init(&c, &s, batch);
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
        if (deliver(&b, tag, &tagbuf, &tagcap, &oe) < 0) {
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
        sr_error le;
        (void)sr_leave(&s, 0, &how, &le);
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
    double secs = sr_now() - start;
    double rate = secs > 0 ? (double)c.bytes / secs / 1e6 : 0.0;
    sr_note("%" PRIu64 " bytes, %" PRIu64 " messages in %.3f s (%.1f MB/s)%s", c.bytes, c.frames,
            secs, rate,
            how == SR_REMOVED ? "; removed the segment and semaphore set"
            : how == SR_LEFT  ? "; left the objects to the peer that remains"
                              : "");
    sr_consumer_free(&c);
    return 0;
}
