/*
 * secret - the secret of smtpscope's own upstream login (see secret.h).
 *
 * Owns struct secret: the password or the cached token (zeroed when let
 * go), the queue of sessions waiting for the token command, and, while the
 * command runs, its process handle, its stdout and stderr pipes, a timer
 * (the timeout) and the bytes read. A run ends when all four handles are
 * closed; only then is its output judged and the waiters told, each in
 * turn, in the order they came. The command runs in a process group of its
 * own (UV_PROCESS_DETACHED), so a timeout kills whatever it started too.
 *
 * Fails closed: a command that exits non-zero, is killed, runs past its
 * timeout, prints nothing or prints what is not a token gives every waiter
 * an error sentence and leaves nothing cached; the next session runs it
 * again. Nothing here writes the secret's bytes anywhere.
 */
#include "secret.h"
#include "../log/repr.h"
#include "../log/transcript.h"

#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <mbedtls/platform_util.h>
#include <mbedtls/sha256.h>
#include <mbedtls/version.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define SECRET_OUT_MAX      (64 * 1024)     /* the token command's stdout, read at most */
#define SECRET_ERR_MAX      1024            /* its stderr, kept for the failure message */
#define SECRET_MARGIN_MS    60000           /* a token goes this long before it expires */
#define SECRET_PLAIN_TTL_MS (5 * 60000)     /* a token with no expires_in: kept this long */
#define SECRET_EXPIRES_MAX  (366 * 86400LL) /* a larger expires_in is taken as this */

struct secret {
    uv_loop_t *loop;
    enum secret_kind kind;
    const char *cmd;
    uint64_t timeout_ms;
    char *value; /* the password, or the last token (NULL: none); zeroed when freed */
    size_t len;
    uint64_t stale_ms;              /* uv_now() from which the token is not handed out */
    unsigned runs;                  /* the token command's runs so far */
    struct secret_wait *waiters;    /* waiting for the run in progress, in order */
    struct secret_wait *delivering; /* being told the result of the run just ended */
    int closing;                    /* secret_close: no more runs, nobody told */
    /* the run in progress */
    int running;
    int handles; /* of this run, not yet closed */
    uv_process_t proc;
    uv_pipe_t out, err;
    uv_timer_t timer;
    int exited, timed_out, out_open, err_open, timer_open;
    int64_t status;
    int term_signal;
    int spawn_rc; /* uv_spawn's error, or 0 */
    uint64_t started_ms;
    char *outbuf; /* SECRET_OUT_MAX: stdout (the token is in it: zeroed when freed) */
    size_t out_len;
    int out_over;
    char errbuf[SECRET_ERR_MAX];
    size_t err_len;
    char rbuf[4096]; /* libuv reads into it; each read is copied out at once */
};

/* secret_drop - let go of a buffer that held a secret. */
static void secret_drop(char *p, size_t n)
{
    if (p != NULL) {
        mbedtls_platform_zeroize(p, n);
        free(p);
    }
}

/* secret_trim - the line without its ending and the blanks around it. */
static size_t secret_trim(const char *p, size_t n, size_t *start)
{
    size_t i = 0;
    while (i < n && (p[i] == ' ' || p[i] == '\t'))
        i++;
    while (n > i && (p[n - 1] == '\r' || p[n - 1] == '\n' || p[n - 1] == ' ' || p[n - 1] == '\t'))
        n--;
    *start = i;
    return n - i;
}

/* secret_printable - no control characters (they would corrupt a SASL
 * message: XOAUTH2 separates its fields with ^A). */
static int secret_printable(const char *p, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)p[i] < 0x20 || p[i] == 0x7f)
            return 0;
    return 1;
}

/* secret_set - keep a copy of value as the secret. -1: out of memory. */
static int secret_set(struct secret *sec, const char *value, size_t len)
{
    char *copy = malloc(len + 1);
    if (copy == NULL)
        return -1;
    memcpy(copy, value, len);
    copy[len] = '\0';
    secret_drop(sec->value, sec->len);
    sec->value = copy;
    sec->len = len;
    return 0;
}

/* secret_read_file - the password file's first line; refused unless only
 * its owner, who must be us, may read or write it (msmtp's rule). */
static int secret_read_file(struct secret *sec, const char *path, char *err, size_t errlen)
{
    struct stat st;
    char buf[SECRET_MAX + 2];
    size_t n = 0, start, len;
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY);

    if (fd < 0) {
        snprintf(err, errlen, "--upstream-password-file %s: cannot read it: %s", path,
                 strerror(errno));
        return -1;
    }
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
        snprintf(err, errlen, "--upstream-password-file %s: not a regular file", path);
        close(fd);
        return -1;
    }
    if ((st.st_mode & (S_IRWXG | S_IRWXO)) != 0 || st.st_uid != geteuid()) {
        snprintf(err, errlen,
                 "--upstream-password-file %s: %s (mode %04o): a file that holds a password must "
                 "be yours and readable by you alone; run: chmod 600 %s",
                 path,
                 st.st_uid != geteuid() ? "belongs to another user" : "others may read or write it",
                 (unsigned)(st.st_mode & 07777), path);
        close(fd);
        return -1;
    }
    for (;;) {
        ssize_t r = read(fd, buf + n, sizeof(buf) - 1 - n);
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0) {
            snprintf(err, errlen, "--upstream-password-file %s: %s", path, strerror(errno));
            close(fd);
            mbedtls_platform_zeroize(buf, sizeof(buf));
            return -1;
        }
        if (r == 0 || memchr(buf + n, '\n', (size_t)r) != NULL ||
            n + (size_t)r == sizeof(buf) - 1) {
            n += (size_t)r;
            break;
        }
        n += (size_t)r;
    }
    close(fd);
    char *nl = memchr(buf, '\n', n);
    len = secret_trim(buf, nl != NULL ? (size_t)(nl - buf) + 1 : n, &start);
    int rc = -1;
    if (nl == NULL && n >= sizeof(buf) - 1)
        snprintf(err, errlen, "--upstream-password-file %s: its first line is longer than %d bytes",
                 path, SECRET_MAX);
    else if (len == 0)
        snprintf(err, errlen, "--upstream-password-file %s: its first line is empty", path);
    else if (!secret_printable(buf + start, len))
        snprintf(err, errlen,
                 "--upstream-password-file %s: its first line holds control characters", path);
    else if (secret_set(sec, buf + start, len) != 0)
        snprintf(err, errlen, "out of memory");
    else
        rc = 0;
    mbedtls_platform_zeroize(buf, sizeof(buf));
    return rc;
}

int secret_open(struct secret **out, uv_loop_t *loop, const struct px_upauth *cfg, char *err,
                size_t errlen)
{
    struct secret *sec;

    *out = NULL;
    if (!cfg->on)
        return 0;
    sec = calloc(1, sizeof(*sec));
    if (sec == NULL) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    sec->loop = loop;
    sec->kind = cfg->token_cmd != NULL ? SECRET_TOKEN_CMD : SECRET_PASSWORD;
    sec->cmd = cfg->token_cmd;
    sec->timeout_ms = cfg->token_timeout_ms;
    if (cfg->password_file != NULL && secret_read_file(sec, cfg->password_file, err, errlen) != 0) {
        free(sec);
        return -1;
    }
    if (cfg->password_env != NULL) {
        const char *v = getenv(cfg->password_env);
        size_t n = v != NULL ? strlen(v) : 0;
        const char *why = v == NULL                 ? "is not set"
                          : n == 0                  ? "is empty"
                          : n > SECRET_MAX          ? "is too long"
                          : !secret_printable(v, n) ? "holds control characters"
                                                    : NULL;
        if (why != NULL) {
            snprintf(err, errlen, "--upstream-password-env %s: the variable %s", cfg->password_env,
                     why);
            free(sec);
            return -1;
        }
        if (secret_set(sec, v, n) != 0) {
            snprintf(err, errlen, "out of memory");
            free(sec);
            return -1;
        }
    }
    *out = sec;
    return 0;
}

enum secret_kind secret_kind(const struct secret *sec)
{
    return sec->kind;
}

unsigned secret_runs(const struct secret *sec)
{
    return sec->runs;
}

void secret_describe(const struct secret *sec, const char *value, size_t len, char *out,
                     size_t outlen)
{
    uint8_t digest[32];

    if (sec->kind == SECRET_PASSWORD) {
        snprintf(out, outlen, "password of %zu bytes", len);
        return;
    }
#if MBEDTLS_VERSION_NUMBER < 0x03000000
    int rc = mbedtls_sha256_ret((const unsigned char *)value, len, digest, 0);
#else
    int rc = mbedtls_sha256((const unsigned char *)value, len, digest, 0);
#endif
    if (rc != 0)
        snprintf(out, outlen, "token of %zu bytes", len);
    else
        snprintf(out, outlen, "token of %zu bytes, sha256 %02x%02x%02x%02x", len, digest[0],
                 digest[1], digest[2], digest[3]);
}

/* ---- the queue ---------------------------------------------------------- */

static void secret_enqueue(struct secret *sec, struct secret_wait *w)
{
    struct secret_wait **pp = &sec->waiters;
    while (*pp != NULL)
        pp = &(*pp)->next;
    w->next = NULL;
    w->pprev = pp;
    *pp = w;
}

void secret_cancel(struct secret *sec, struct secret_wait *w)
{
    (void)sec;
    if (w->pprev == NULL)
        return;
    *w->pprev = w->next;
    if (w->next != NULL)
        w->next->pprev = w->pprev;
    w->next = NULL;
    w->pprev = NULL;
}

/* secret_deliver - tell each waiter of the run that ended, in order. A
 * callback may cancel another waiter, or queue itself for a new run. */
static void secret_deliver(struct secret *sec, const char *value, size_t len, const char *error)
{
    sec->delivering = sec->waiters;
    if (sec->delivering != NULL)
        sec->delivering->pprev = &sec->delivering;
    sec->waiters = NULL;
    while (sec->delivering != NULL) {
        struct secret_wait *w = sec->delivering;
        secret_cancel(sec, w);
        w->cb(w, value, len, error);
    }
}

/* ---- a run of the token command ------------------------------------------ */

static void secret_run(struct secret *sec);

/* secret_judge - what the finished run gave: 0 and the token (into
 * sec->value) with its lifetime, or -1 and why. */
static int secret_judge(struct secret *sec, char *why, size_t whylen, int64_t *expires_in)
{
    char said[300] = "";
    size_t start, len;
    const char *p;

    *expires_in = -1;
    if (sec->err_len > 0) {
        /* its first line of stderr, escaped: said with a failure */
        const char *nl = memchr(sec->errbuf, '\n', sec->err_len);
        size_t n = nl != NULL ? (size_t)(nl - sec->errbuf) : sec->err_len;
        char shown[240];
        tlog_repr(shown, sizeof(shown), (const uint8_t *)sec->errbuf, n, TLOG_REPR_STR);
        snprintf(said, sizeof(said), "; its stderr: %s", shown);
    }
    if (sec->spawn_rc != 0) {
        snprintf(why, whylen, "cannot run /bin/sh: %s (%s)", uv_strerror(sec->spawn_rc),
                 uv_err_name(sec->spawn_rc));
        return -1;
    }
    if (sec->timed_out) {
        snprintf(why, whylen,
                 "it did not finish within %llu ms (--upstream-token-timeout): killed%s",
                 (unsigned long long)sec->timeout_ms, said);
        return -1;
    }
    if (sec->term_signal != 0) {
        snprintf(why, whylen, "it was killed by signal %d%s", sec->term_signal, said);
        return -1;
    }
    if (sec->status != 0) {
        snprintf(why, whylen, "it exited with status %lld%s", (long long)sec->status, said);
        return -1;
    }
    if (sec->out_over) {
        snprintf(why, whylen, "it printed more than %d bytes", SECRET_OUT_MAX);
        return -1;
    }
    len = secret_trim(sec->outbuf, sec->out_len, &start);
    p = sec->outbuf + start;
    if (len == 0) {
        snprintf(why, whylen, "it printed nothing on stdout (exit status 0)%s", said);
        return -1;
    }
    if (p[0] == '{') {
        json_error_t jerr;
        json_t *o = json_loadb(p, len, 0, &jerr), *tok, *exp, *error;
        if (!json_is_object(o)) {
            snprintf(why, whylen, "its output starts with '{' but is not a JSON object (%s)",
                     jerr.text);
            json_decref(o);
            return -1;
        }
        error = json_object_get(o, "error");
        tok = json_object_get(o, "access_token");
        if (json_is_string(error) && !json_is_string(tok)) {
            /* the token endpoint's refusal (RFC 6749 5.2) */
            const char *e = json_string_value(error);
            const char *d = json_string_value(json_object_get(o, "error_description"));
            char es[100], ds[300];
            tlog_repr(es, sizeof(es), (const uint8_t *)e, strlen(e), TLOG_REPR_PLAIN);
            tlog_repr(ds, sizeof(ds), (const uint8_t *)(d != NULL ? d : ""), d ? strlen(d) : 0,
                      TLOG_REPR_PLAIN);
            snprintf(why, whylen, "the token endpoint refused: %s%s%s%s", es, d ? " (" : "", ds,
                     d ? ")" : "");
            if (strcmp(e, "invalid_grant") == 0 && whylen > strlen(why))
                snprintf(why + strlen(why), whylen - strlen(why),
                         "; the refresh token is expired or revoked: a refresh token of an OAuth "
                         "app in Testing status lasts 7 days, then consent must be given again");
            json_decref(o);
            return -1;
        }
        if (!json_is_string(tok) || json_string_length(tok) == 0) {
            snprintf(why, whylen, "its JSON has no \"access_token\" string");
            json_decref(o);
            return -1;
        }
        exp = json_object_get(o, "expires_in");
        if (json_is_integer(exp))
            *expires_in = json_integer_value(exp);
        else if (json_is_real(exp)) {
            double v = json_real_value(exp); /* clamped before the cast: no overflow */
            *expires_in = v > 0 && v < (double)SECRET_EXPIRES_MAX ? (int64_t)v
                          : v > 0                                 ? SECRET_EXPIRES_MAX
                                                                  : 0;
        } else if (json_is_string(exp) && json_string_value(exp)[0] >= '0' &&
                   json_string_value(exp)[0] <= '9')
            *expires_in = strtoll(json_string_value(exp), NULL, 10);
        len = json_string_length(tok);
        int rc = 0;
        if (len > SECRET_MAX || !secret_printable(json_string_value(tok), len)) {
            snprintf(why, whylen, "its access_token is %s",
                     len > SECRET_MAX ? "too long" : "not printable text");
            rc = -1;
        } else if (secret_set(sec, json_string_value(tok), len) != 0) {
            snprintf(why, whylen, "out of memory");
            rc = -1;
        }
        /* jansson's copy of the token: zeroed before it is freed */
        if (json_is_string(tok))
            mbedtls_platform_zeroize((char *)json_string_value(tok), json_string_length(tok));
        json_decref(o);
        return rc;
    }
    const char *nl = memchr(p, '\n', len);
    if (nl != NULL)
        len = secret_trim(p, (size_t)(nl - p), &start), p += start;
    if (len > SECRET_MAX || !secret_printable(p, len)) {
        snprintf(why, whylen, "its first line is %s",
                 len > SECRET_MAX ? "too long for a token" : "not printable text");
        return -1;
    }
    if (secret_set(sec, p, len) != 0) {
        snprintf(why, whylen, "out of memory");
        return -1;
    }
    return 0;
}

/* secret_finish - the run's handles are all closed: judge it, keep the
 * token, tell the waiters. */
static void secret_finish(struct secret *sec)
{
    char why[800], desc[80];
    int64_t expires_in;
    uint64_t now = uv_now(sec->loop), took = now - sec->started_ms;
    int rc = secret_judge(sec, why, sizeof(why), &expires_in);

    secret_drop(sec->outbuf, SECRET_OUT_MAX);
    sec->outbuf = NULL;
    mbedtls_platform_zeroize(sec->rbuf, sizeof(sec->rbuf));
    sec->running = 0;
    if (sec->closing)
        return; /* nobody waits: secret_close let them go */
    if (rc != 0) {
        tlog_note(0, TLOG_ERROR, "the token command (run %u, %llu ms) failed: %s", sec->runs,
                  (unsigned long long)took, why);
        secret_deliver(sec, NULL, 0, why);
        return;
    }
    uint64_t keep;
    char life[120];
    if (expires_in < 0) {
        keep = SECRET_PLAIN_TTL_MS;
        snprintf(life, sizeof(life), "no expiry given: kept for %llu s",
                 (unsigned long long)keep / 1000);
    } else {
        uint64_t ms =
            (uint64_t)(expires_in > SECRET_EXPIRES_MAX ? SECRET_EXPIRES_MAX : expires_in) * 1000;
        /* shortly before it expires: a minute, or half its life if shorter */
        uint64_t margin = ms / 2 < SECRET_MARGIN_MS ? ms / 2 : SECRET_MARGIN_MS;
        keep = ms - margin;
        snprintf(life, sizeof(life), "expires in %lld s: kept for %llu s", (long long)expires_in,
                 (unsigned long long)keep / 1000);
    }
    sec->stale_ms = now + keep;
    secret_describe(sec, sec->value, sec->len, desc, sizeof(desc));
    tlog_note(0, TLOG_INFO, "the token command (run %u, %llu ms) gave a %s; %s", sec->runs,
              (unsigned long long)took, desc, life);
    secret_deliver(sec, sec->value, sec->len, NULL);
}

static void secret_closed_cb(uv_handle_t *h)
{
    struct secret *sec = h->data;
    if (--sec->handles == 0)
        secret_finish(sec);
}

/* secret_settle - the process has exited and both pipes are closed: the
 * timer goes too (the last handle). */
static void secret_settle(struct secret *sec)
{
    if (sec->timer_open && sec->exited && !sec->out_open && !sec->err_open) {
        sec->timer_open = 0;
        uv_close((uv_handle_t *)&sec->timer, secret_closed_cb);
    }
}

static void secret_close_pipe(struct secret *sec, uv_pipe_t *p, int *open)
{
    if (*open) {
        *open = 0;
        uv_close((uv_handle_t *)p, secret_closed_cb);
    }
    secret_settle(sec);
}

static void secret_alloc_cb(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
    struct secret *sec = h->data;
    (void)suggested;
    *buf = uv_buf_init(sec->rbuf, sizeof(sec->rbuf));
}

static void secret_read_cb(uv_stream_t *st, ssize_t nread, const uv_buf_t *buf)
{
    struct secret *sec = st->data;
    int is_out = st == (uv_stream_t *)&sec->out;

    if (nread < 0) {
        secret_close_pipe(sec, is_out ? &sec->out : &sec->err,
                          is_out ? &sec->out_open : &sec->err_open);
        return;
    }
    size_t n = (size_t)nread;
    if (is_out) {
        size_t room = SECRET_OUT_MAX - sec->out_len;
        if (n > room)
            sec->out_over = 1;
        memcpy(sec->outbuf + sec->out_len, buf->base, n < room ? n : room);
        sec->out_len += n < room ? n : room;
    } else {
        size_t room = sizeof(sec->errbuf) - sec->err_len;
        memcpy(sec->errbuf + sec->err_len, buf->base, n < room ? n : room);
        sec->err_len += n < room ? n : room;
    }
}

static void secret_exit_cb(uv_process_t *p, int64_t status, int term_signal)
{
    struct secret *sec = p->data;
    sec->exited = 1;
    sec->status = status;
    sec->term_signal = term_signal;
    uv_close((uv_handle_t *)p, secret_closed_cb);
    secret_settle(sec);
}

/* secret_kill - the command's process group, and what it started. */
static void secret_kill(struct secret *sec)
{
    if (sec->spawn_rc == 0 && sec->proc.pid > 0)
        (void)uv_kill(-sec->proc.pid, SIGKILL);
}

static void secret_timeout_cb(uv_timer_t *t)
{
    struct secret *sec = t->data;
    sec->timed_out = 1;
    secret_kill(sec);
    secret_close_pipe(sec, &sec->out, &sec->out_open);
    secret_close_pipe(sec, &sec->err, &sec->err_open);
}

/* secret_run - start the token command: /bin/sh -c CMD, stdin /dev/null,
 * stdout and stderr read here, in a process group of its own. A failure
 * to start is judged like any other end, once the handles are closed. */
static void secret_run(struct secret *sec)
{
    char *args[] = {"/bin/sh", "-c", (char *)sec->cmd, NULL};
    uv_stdio_container_t stdio[3];
    uv_process_options_t o;

    sec->running = 1;
    sec->runs++;
    sec->exited = sec->timed_out = 0;
    sec->status = 0;
    sec->term_signal = 0;
    sec->spawn_rc = 0;
    sec->out_len = sec->err_len = 0;
    sec->out_over = 0;
    sec->started_ms = uv_now(sec->loop);
    sec->outbuf = malloc(SECRET_OUT_MAX);
    uv_pipe_init(sec->loop, &sec->out, 0);
    uv_pipe_init(sec->loop, &sec->err, 0);
    uv_timer_init(sec->loop, &sec->timer);
    sec->out.data = sec->err.data = sec->timer.data = sec->proc.data = sec;
    sec->out_open = sec->err_open = sec->timer_open = 1;
    sec->handles = 4;

    memset(&o, 0, sizeof(o));
    stdio[0].flags = UV_IGNORE; /* /dev/null */
    stdio[1].flags = UV_CREATE_PIPE | UV_WRITABLE_PIPE;
    stdio[1].data.stream = (uv_stream_t *)&sec->out;
    stdio[2].flags = UV_CREATE_PIPE | UV_WRITABLE_PIPE;
    stdio[2].data.stream = (uv_stream_t *)&sec->err;
    o.file = "/bin/sh";
    o.args = args;
    o.stdio = stdio;
    o.stdio_count = 3;
    o.exit_cb = secret_exit_cb;
    o.flags = UV_PROCESS_DETACHED; /* setsid(): its own process group, killed whole */
    sec->spawn_rc = sec->outbuf == NULL ? UV_ENOMEM : uv_spawn(sec->loop, &sec->proc, &o);
    if (sec->spawn_rc != 0) {
        if (sec->outbuf == NULL)
            sec->handles--; /* the process handle was never made */
        else
            uv_close((uv_handle_t *)&sec->proc, secret_closed_cb);
        sec->exited = 1;
        secret_close_pipe(sec, &sec->out, &sec->out_open);
        secret_close_pipe(sec, &sec->err, &sec->err_open);
        return;
    }
    uv_read_start((uv_stream_t *)&sec->out, secret_alloc_cb, secret_read_cb);
    uv_read_start((uv_stream_t *)&sec->err, secret_alloc_cb, secret_read_cb);
    uv_timer_start(&sec->timer, secret_timeout_cb, sec->timeout_ms, 0);
}

int secret_get(struct secret *sec, struct secret_wait *w, secret_cb *cb, const char **value,
               size_t *len)
{
    if (sec->kind == SECRET_PASSWORD ||
        (sec->value != NULL && !sec->running && uv_now(sec->loop) < sec->stale_ms)) {
        *value = sec->value;
        *len = sec->len;
        return 0;
    }
    w->cb = cb;
    secret_enqueue(sec, w);
    if (!sec->running && !sec->closing)
        secret_run(sec);
    return 1;
}

int secret_reject(struct secret *sec, const char *value, size_t len)
{
    if (sec->kind == SECRET_PASSWORD)
        return 0;
    if (sec->value != NULL && sec->len == len && memcmp(sec->value, value, len) == 0)
        sec->stale_ms = 0; /* kept (a waiter may still read it) but not handed out */
    return 1;
}

void secret_close(struct secret *sec)
{
    if (sec == NULL || sec->closing)
        return;
    sec->closing = 1;
    while (sec->waiters != NULL)
        secret_cancel(sec, sec->waiters);
    if (sec->running) {
        secret_kill(sec);
        if (sec->timer_open)
            uv_timer_start(&sec->timer, secret_timeout_cb, 0, 0); /* close the pipes now */
    }
}

void secret_free(struct secret *sec)
{
    if (sec == NULL)
        return;
    secret_drop(sec->value, sec->len);
    secret_drop(sec->outbuf, SECRET_OUT_MAX);
    free(sec);
}
