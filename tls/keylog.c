/*
 * keylog - NSS key-log lines ("<label> <client random> <secret>") for every
 * TLS session of both legs, so Wireshark can decrypt a capture: one
 * CLIENT_RANDOM line (the master secret) per TLS 1.2 session, and for TLS 1.3
 * the handshake and application traffic secrets of each direction.
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

#define TLS_KEYLOG_LABEL_MAX  31 /* "CLIENT_HANDSHAKE_TRAFFIC_SECRET" */
#define TLS_KEYLOG_SECRET_MAX 64 /* TLS 1.3 secrets are a hash long: 48 with SHA-384 */
_Static_assert(TLS_KEYLOG_LINE_MAX ==
                   TLS_KEYLOG_LABEL_MAX + 1 + 64 + 1 + 2 * TLS_KEYLOG_SECRET_MAX + 1,
               "tls.h's line bound follows these");

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

size_t tls_keylog_line(char *buf, const char *label, const unsigned char client_random[32],
                       const unsigned char *secret, size_t secret_len)
{
    static const char hex[] = "0123456789abcdef";
    size_t o = strlen(label);

    if (o > TLS_KEYLOG_LABEL_MAX || secret_len > TLS_KEYLOG_SECRET_MAX)
        return 0; /* never from tls.c: its labels and secrets are fixed */
    memcpy(buf, label, o);
    buf[o++] = ' ';
    for (int i = 0; i < 32; i++) {
        buf[o++] = hex[client_random[i] >> 4];
        buf[o++] = hex[client_random[i] & 15];
    }
    buf[o++] = ' ';
    for (size_t i = 0; i < secret_len; i++) {
        buf[o++] = hex[secret[i] >> 4];
        buf[o++] = hex[secret[i] & 15];
    }
    buf[o++] = '\n';
    return o;
}

void tls_keylog_write(void *arg, const char *label, const unsigned char client_random[32],
                      const unsigned char *secret, size_t secret_len)
{
    struct tls_keylog *kl = arg;
    char line[TLS_KEYLOG_LINE_MAX];
    size_t o = tls_keylog_line(line, label, client_random, secret, secret_len);

    if (o == 0)
        return;
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
