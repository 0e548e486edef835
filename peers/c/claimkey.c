/*
 * c-claimkey N COMMAND [ARG...] - run COMMAND with N System V keys of the interop
 * range (0x7e5xxxxx) that nobody else is using, for `make check` (check.sh).
 *
 * A key is only a name: two runs that pick the same one meet in the kernel and
 * ruin each other's objects, and "nothing is at it in ipcs" is not enough when
 * several test suites start at once. So every test key of this project comes from
 * one allocator (crates/cli/src/keys.rs), which this program speaks too:
 *   1. a key is CLAIMED first: an open-file-description lock, fcntl(F_OFD_SETLK),
 *      on byte INDEX of $TMPDIR/shm-ipc-keys-<euid>-interop.lock (INDEX = key -
 *      0x7e500000). The kernel drops such a lock when its open file description
 *      is closed, so a crashed run never leaves a claim behind;
 *   2. only then is it checked to be free in the kernel: shmget(key, 0, 0) and
 *      semget(key, 0, 0) both fail with ENOENT. Anything there (a leftover, someone
 *      else's object) is never ours to touch: the next key is tried.
 * The claims last while this program waits for COMMAND; the keys are in its
 * environment as SR_KEYS="0x7e5..... 0x7e5.....". Exit status: COMMAND's (126/127
 * if it could not be run, 1 if no key could be claimed).
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE /* F_OFD_SETLK */
#endif
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ipc.h>
#include <sys/sem.h>
#include <sys/shm.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define RANGE_BASE 0x7e500000u /* shm_cli::keys::Range::INTEROP */
#define RANGE_BITS 20
#define MAX_KEYS 64

/* Byte `index` of the lock file, write-locked without waiting: 1 claimed, 0 held by
 * someone else, -1 error. OFD locks need l_pid = 0; a fresh open per claim, so two
 * claims of one process conflict like those of two processes. */
static int claim_byte(const char *path, uint32_t index, int *fd_out)
{
    int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
    if (fd < 0)
        return -1;
    struct flock lk;
    memset(&lk, 0, sizeof lk);
    lk.l_type = F_WRLCK;
    lk.l_whence = SEEK_SET;
    lk.l_start = (off_t)index;
    lk.l_len = 1;
    lk.l_pid = 0;
    if (fcntl(fd, F_OFD_SETLK, &lk) == 0) {
        *fd_out = fd;
        return 1;
    }
    int err = errno;
    close(fd);
    if (err == EAGAIN || err == EACCES)
        return 0;
    errno = err;
    return -1;
}

/* Nothing at the key: no segment and no semaphore set (and nothing we may not see). */
static int key_is_free(key_t key)
{
    return shmget(key, 0, 0) < 0 && errno == ENOENT && semget(key, 0, 0) < 0 &&
           errno == ENOENT;
}

int main(int argc, char **argv)
{
    if (argc < 3 || atoi(argv[1]) < 1 || atoi(argv[1]) > MAX_KEYS) {
        fprintf(stderr, "usage: c-claimkey N(1..%d) COMMAND [ARG...]\n", MAX_KEYS);
        return 2;
    }
    int n = atoi(argv[1]);
    const char *tmp = getenv("TMPDIR");
    char path[4096];
    snprintf(path, sizeof path, "%s/shm-ipc-keys-%u-interop.lock", tmp && *tmp ? tmp : "/tmp",
             (unsigned)geteuid());
    uint32_t size = 1u << RANGE_BITS;
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    uint32_t index = ((uint32_t)getpid() * 2654435761u ^ (uint32_t)ts.tv_nsec) % size;
    char keys[MAX_KEYS * 12] = "";
    int fds[MAX_KEYS], got = 0;
    for (uint32_t tries = 0; got < n && tries < size; tries++, index = (index + 1) % size) {
        int fd;
        int r = claim_byte(path, index, &fd);
        if (r < 0) {
            fprintf(stderr, "c-claimkey: %s: %s\n", path, strerror(errno));
            return 1;
        }
        if (r == 0)
            continue;
        key_t key = (key_t)(RANGE_BASE | index);
        if (!key_is_free(key)) {
            close(fd); /* something is there: never ours to touch */
            continue;
        }
        fds[got++] = fd;
        size_t used = strlen(keys);
        snprintf(keys + used, sizeof keys - used, "%s0x%08x", used ? " " : "", (unsigned)key);
    }
    if (got < n) {
        fprintf(stderr, "c-claimkey: every key of the interop range is claimed or in use\n");
        return 1;
    }
    if (setenv("SR_KEYS", keys, 1) != 0)
        return 1;
    pid_t child = fork();
    if (child < 0)
        return 1;
    if (child == 0) {
        /* The lock files are O_CLOEXEC: the claims stay with the parent only. */
        execvp(argv[2], argv + 2);
        fprintf(stderr, "c-claimkey: %s: %s\n", argv[2], strerror(errno));
        _exit(errno == ENOENT ? 127 : 126);
    }
    int status;
    while (waitpid(child, &status, 0) < 0)
        if (errno != EINTR)
            return 1;
    for (int i = 0; i < got; i++)
        close(fds[i]); /* the claims end here */
    return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}
