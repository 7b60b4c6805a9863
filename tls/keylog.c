/*
 * keylog - NSS key-log lines ("CLIENT_RANDOM <random> <master secret>") for
 * every TLS 1.2 session of both legs, so Wireshark can decrypt a capture.
 *
 * The file is opened once, O_APPEND | O_NOFOLLOW (never through a symlink),
 * created 0600; each line is one write(2). A failed write is counted for the
 * caller to warn about, never fatal. Lines may come from several event
 * loops (--loops): the counters are under a mutex.
 */
#include "tls.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

struct tls_keylog {
    pthread_mutex_t mu; /* errors, last_errno */
    int fd;
    unsigned errors;
    int last_errno;
};

int tls_keylog_open(struct tls_keylog **out, const char *path, char *err, size_t errlen)
{
    struct tls_keylog *kl = calloc(1, sizeof(*kl));
    if (kl == NULL) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    kl->fd = open(path, O_WRONLY | O_CREAT | O_APPEND | O_NOFOLLOW | O_CLOEXEC, 0600);
    if (kl->fd < 0) {
        snprintf(err, errlen, "cannot open key log %s: %s%s", path, strerror(errno),
                 errno == ELOOP ? " (it is a symbolic link)" : "");
        free(kl);
        return -1;
    }
    pthread_mutex_init(&kl->mu, NULL);
    *out = kl;
    return 0;
}

void tls_keylog_write(void *arg, const unsigned char client_random[32],
                      const unsigned char master_secret[48])
{
    static const char hex[] = "0123456789abcdef";
    struct tls_keylog *kl = arg;
    char line[14 + 64 + 1 + 96 + 1];
    size_t o = 0;

    memcpy(line, "CLIENT_RANDOM ", 14);
    o = 14;
    for (int i = 0; i < 32; i++) {
        line[o++] = hex[client_random[i] >> 4];
        line[o++] = hex[client_random[i] & 15];
    }
    line[o++] = ' ';
    for (int i = 0; i < 48; i++) {
        line[o++] = hex[master_secret[i] >> 4];
        line[o++] = hex[master_secret[i] & 15];
    }
    line[o++] = '\n';
    if (write(kl->fd, line, o) != (ssize_t)o) {
        int e = errno;
        pthread_mutex_lock(&kl->mu);
        kl->errors++;
        kl->last_errno = e;
        pthread_mutex_unlock(&kl->mu);
    }
}

unsigned tls_keylog_errors(struct tls_keylog *kl, int *last_errno)
{
    unsigned n;
    pthread_mutex_lock(&kl->mu);
    *last_errno = kl->last_errno;
    n = kl->errors;
    pthread_mutex_unlock(&kl->mu);
    return n;
}

void tls_keylog_close(struct tls_keylog *kl)
{
    if (kl == NULL)
        return;
    close(kl->fd);
    pthread_mutex_destroy(&kl->mu);
    free(kl);
}
