/*
 * main - smtpscope's entry: options, TLS and transcript set-up, the
 * listener, signals.
 *
 * Start-up errors print one line and exit 2. The first SIGINT/SIGTERM stops
 * accepting and lets open sessions finish for --grace; then (or at a second
 * signal) the rest are told 421 and closed. When the last session is gone a
 * summary is printed, the loop runs dry, everything is freed, exit status 0.
 *
 * Owns the mailbox (--keep): the store of kept messages and the transcript
 * consumer that fills it, made before sessions run (in sink mode filled
 * first from the sink directory) and freed at exit; with
 * the HTTP API, the session registry (another consumer) and the live
 * events. The HTTP API runs on a loop and thread of its own (httploop.h),
 * started before any session can run. It ends in one place, px_http_close,
 * run there at the first signal (or here at a start-up error): the event
 * streams end, the waits are let go, the server closes; the thread is
 * joined at exit; what the relay's threads may still touch (the registry,
 * the events' queue) is freed after they have stopped.
 */
#include "ci/check.h"
#include "ci/replay.h"
#include "ci/persona.h"
#include "ci/sink.h"
#include "../http/auth.h"
#include "../http/info.h"
#include "../http/server.h"
#include "../http/ui.h"
#include "../log/transcript.h"
#include "../mailbox/api.h"
#include "../mailbox/collect.h"
#include "../mailbox/events.h"
#include "../mailbox/load.h"
#include "../mailbox/mime.h"
#include "../mailbox/sessapi.h"
#include "../mailbox/sessions.h"
#include "../mailbox/store.h"
#include "../mailbox/view.h"
#include "config.h"
#include "httploop.h"
#include "listener.h"
#include "loops.h"
#include "secret.h"
#include "session.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

struct px_main {
    struct proxy px; /* the first loop's */
    struct px_shared shared;
    struct px_listener listener;
    struct px_loops loops; /* --loops: the others */
    uv_async_t loop_ended; /* one of them has ended (loops > 1 only) */
    uv_signal_t sigint, sigterm;
    uv_timer_t grace;
    uv_prepare_t flush; /* the console's lines go out before the loop waits */
    struct tls_keylog *keylog;
    struct tls_ca *ca;            /* the local CA, when it issues the client leg's certificates */
    char ca_note[600];            /* what the start-up lines say about it */
    struct mbox *mbox;            /* the kept messages (--keep), or NULL */
    struct mbox_collect *collect; /* fills it from the transcript */
    struct px_http_loop hl;       /* the HTTP API's loop and thread */
    struct http_server *http;     /* the HTTP API, or NULL (off, or the default port taken) */
    struct http_info http_info;
    char http_note[800];            /* why there is no HTTP API, for the start-up lines */
    char upstream[300];             /* "host:port", for /api/v1/info */
    struct mbox_api *api;           /* the kept messages over HTTP, or NULL */
    struct sess_registry *sessions; /* the sessions over HTTP, or NULL */
    struct mbox_events *events;     /* /api/events, or NULL */

    struct secret *secret; /* --upstream-auth's password or token command, or NULL */
    int finished;
};

static struct px_main m;

/* px_finish - every session has ended: summary, then let the loop run dry. */
static void px_finish(void)
{
    if (m.finished)
        return;
    m.finished = 1;
    tlog_summary();
    if (m.px.cfg->loops > 1)
        uv_unref((uv_handle_t *)&m.loop_ended); /* closed after the join */
    /* the signal handles stay (unreferenced) to the end: closing one gives
     * the default action back, and a late signal in the moment before it
     * could be ignored again would kill an exit already under way */
    uv_unref((uv_handle_t *)&m.sigint);
    uv_unref((uv_handle_t *)&m.sigterm);
    uv_close((uv_handle_t *)&m.grace, NULL);
    uv_close((uv_handle_t *)&m.flush, NULL);
    secret_close(m.secret); /* a token command still running is killed */
}

static void px_flush_cb(uv_prepare_t *h)
{
    (void)h;
    tlog_flush();
}

/* px_idle_cb - a session of the first loop ended. The summary waits for
 * the other loops too. */
static void px_idle_cb(struct proxy *px)
{
    if (px->stopping && px->nsessions == 0 && px_loops_all_ended(&m.loops))
        px_finish();
}

static void px_loop_ended_cb(uv_async_t *h)
{
    (void)h;
    px_idle_cb(&m.px);
}

static void px_grace_cb(uv_timer_t *t)
{
    (void)t;
    session_stop_all(&m.px);
    px_loops_stop(&m.loops, 1);
}

/* px_http_close - the HTTP API answers no more (on its loop's thread once
 * it runs; px_http_loop_stop runs it once): the event streams end, the
 * mailbox routes let their waits go, the server closes its connections. */
static void px_http_close(void *arg)
{
    (void)arg;
    events_close(m.events); /* freed at exit: a relay thread may still look */
    api_close(m.api);       /* freed at exit, like the events */
    http_server_close(m.http);
}

static void px_signal_cb(uv_signal_t *h, int signum)
{
    (void)h;
    if (m.finished)
        return; /* too late to matter: the summary is out */
    if (m.px.stopping) {
        tlog_note(0, TLOG_INFO, "%s again: closing open sessions now",
                  signum == SIGINT ? "SIGINT" : "SIGTERM");
        session_stop_all(&m.px);
        px_loops_stop(&m.loops, 1);
        return;
    }
    m.px.stopping = 1;
    px_http_loop_stop(&m.hl); /* its kept requests and streams end now */
    tlog_note(0, TLOG_INFO, "%s: shutting down; %u open session(s) may finish for %llu ms",
              signum == SIGINT ? "SIGINT" : "SIGTERM", atomic_load(&m.shared.nsessions),
              (unsigned long long)m.px.cfg->grace_ms);
    px_listener_close(&m.listener);
    px_loops_stop(&m.loops, 0);
    uv_timer_start(&m.grace, px_grace_cb, m.px.cfg->grace_ms, 0);
    px_idle_cb(&m.px);
}

/* px_more_files - room for two sockets and a transcript file per session. */
static void px_more_files(void)
{
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
    }
}

/* px_tune_malloc - glibc's malloc gives freed memory back to the kernel
 * once more than its trim threshold is free at the heap's top, and starts
 * that threshold at 128 KiB, raising it (to twice a block's size) only
 * when a block big enough to have been mapped on its own is freed. Until
 * then, a burst of small allocations freed together (a wake-up's live
 * events) shrinks the heap: a TLB shoot-down on every CPU running one of
 * our threads, and fresh zeroed pages for the next burst. Freeing one such
 * block at start raises both thresholds the way glibc itself would, and
 * keeps them adapting (a 6.7 MB listing of 10,000 messages raises them
 * again). With ten live-event subscribers the relay kept 0.43-0.51 of its
 * rate without this, 0.78-0.85 with it (docs/benchmarks.md). Not with a
 * GLIBC_TUNABLES setting of malloc's: that wins. */
#define PX_MALLOC_PRIME (512u << 10) /* thresholds: mapped from 512 KiB, kept to 1 MiB */
static void px_tune_malloc(void)
{
    const char *t = getenv("GLIBC_TUNABLES");
    if (t != NULL && strstr(t, "glibc.malloc.") != NULL)
        return;
    volatile char *p = malloc(PX_MALLOC_PRIME);
    if (p != NULL)
        p[0] = 0; /* used, so the pair is not optimised away */
    free((void *)p);
}

static int px_setup_transcript(const struct px_config *cfg, char *err, size_t errlen)
{
    int tty = isatty(STDOUT_FILENO);
    const char *no_color = getenv("NO_COLOR");
    struct tlog_options topts = {
        .show_secrets = cfg->show_secrets,
        .console = cfg->json != NULL && strcmp(cfg->json, "-") == 0 ? NULL : stdout,
        .color = cfg->color >= 0 ? cfg->color : tty && (no_color == NULL || no_color[0] == '\0'),
        .explain = cfg->explain >= 0 ? cfg->explain : tty,
        .quiet = cfg->quiet,
        .batch = !tty,
        .format = cfg->format == PX_FORMAT_SMTPLIB    ? TLOG_FORMAT_SMTPLIB
                  : cfg->format == PX_FORMAT_SMTPLIB2 ? TLOG_FORMAT_SMTPLIB2
                                                      : TLOG_FORMAT_CONSOLE,
        .notes = stderr,
    };
    tlog_init(&topts);
    if (cfg->json != NULL && tlog_open_json(cfg->json, err, errlen) != 0)
        return -1;
    if (cfg->transcript_dir != NULL && tlog_open_dir(cfg->transcript_dir, err, errlen) != 0)
        return -1;
    if (cfg->pcap != NULL && tlog_open_pcap(cfg->pcap, err, errlen) != 0)
        return -1;
    return 0;
}

/* px_check_file - a file given on the command line must be a readable
 * regular file: said in words, with the errno and what to do, before
 * mbedTLS would say "PK - Read/write of file failed" or "Memory allocation
 * failed" (for a directory). */
static int px_check_file(const char *opt, const char *what, const char *path, char *err,
                         size_t errlen)
{
    struct stat st;
    int fd;

    if (path == NULL)
        return 0;
    if (stat(path, &st) != 0) {
        snprintf(err, errlen, "%s %s: cannot read the %s: %s%s", opt, path, what, strerror(errno),
                 errno == EACCES ? " (check the permissions of its folders, and the user "
                                   "smtpscope runs as)"
                                 : "");
        return -1;
    }
    if (!S_ISREG(st.st_mode)) {
        snprintf(err, errlen, "%s %s: the %s must be a file (PEM), and this is %s", opt, path, what,
                 S_ISDIR(st.st_mode) ? "a directory" : "not a regular file");
        return -1;
    }
    fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        snprintf(err, errlen, "%s %s: cannot read the %s: %s%s", opt, path, what, strerror(errno),
                 errno == EACCES ? " (check its permissions, and the user smtpscope runs as)" : "");
        return -1;
    }
    close(fd);
    return 0;
}

/* px_setup_client_cert - the client leg's certificate: --cert/--key, or
 * issued by the local CA (made on first use), or, if the CA cannot be kept,
 * a self-signed one made now (said at start). */
static int px_setup_client_cert(const struct px_config *cfg, char *err, size_t errlen)
{
    char dir[4096], why[700];

    if (cfg->cert_file != NULL || cfg->client_tls == PX_CLIENT_TLS_OFF)
        return tls_config_server_new(&m.px.client_tls, cfg->cert_file, cfg->key_file, err, errlen);
    if (tls_ca_default_dir(dir, sizeof(dir)) == NULL)
        snprintf(why, sizeof(why), "neither XDG_DATA_HOME nor HOME is set");
    else if (tls_ca_open(&m.ca, dir, why, sizeof(why)) == 0 &&
             tls_config_server_new_ca(&m.px.client_tls, m.ca, err, errlen) == 0) {
        snprintf(m.ca_note, sizeof(m.ca_note),
                 "%s local CA %s issues the client leg's certificates (run 'smtpscope ca' to see "
                 "how to trust it)",
                 tls_ca_created(m.ca) ? "made a new" : "the", tls_ca_cert_path(m.ca));
        return 0;
    } else if (m.ca != NULL) {
        return -1; /* the CA is there but unusable: err says why */
    }
    snprintf(m.ca_note, sizeof(m.ca_note),
             "no local CA (%.400s): the client leg uses a self-signed certificate made now, which "
             "clients that verify will refuse",
             why);
    return tls_config_server_new(&m.px.client_tls, NULL, NULL, err, errlen);
}

/* px_ca_main - `smtpscope ca`: the local CA's file, PEM and how to trust it. */
static int px_ca_main(int argc, char **argv)
{
    char dir[4096], err[700];
    struct tls_ca *ca;

    if (argc > 1) {
        fprintf(argc > 1 && strcmp(argv[1], "--help") == 0 ? stdout : stderr,
                "Usage: smtpscope ca\n\nPrints the local CA that issues the client leg's "
                "certificates (made on first use in $XDG_DATA_HOME/smtpscope), and how to "
                "trust it.\n");
        return strcmp(argv[1], "--help") == 0 ? 0 : 2;
    }
    if (tls_ca_default_dir(dir, sizeof(dir)) == NULL) {
        fprintf(stderr, "smtpscope ca: neither XDG_DATA_HOME nor HOME is set\n");
        return 2;
    }
    if (tls_ca_open(&ca, dir, err, sizeof(err)) != 0) {
        fprintf(stderr, "smtpscope ca: %s\n", err);
        return 2;
    }
    const char *p = tls_ca_cert_path(ca);
    FILE *f = fopen(p, "r");
    char pem[8192];
    size_t n = f != NULL ? fread(pem, 1, sizeof(pem) - 1, f) : 0;
    if (f != NULL)
        fclose(f);
    pem[n] = '\0';
    printf("smtpscope's local CA%s: %s\n\n%s\n", tls_ca_created(ca) ? " (made now)" : "", p, pem);
    printf("It signs the certificate smtpscope shows a client after STARTTLS (for the name\n"
           "the client asked for, and localhost, 127.0.0.1, ::1). Trust it, once, in the\n"
           "client under test, and verification stays on:\n"
           "  Python:  ctx = ssl.create_default_context(cafile=\"%s\")\n"
           "           smtp.starttls(context=ctx)\n"
           "  msmtp:   tls_trust_file %s\n"
           "  curl:    curl --cacert %s ...\n"
           "  swaks:   swaks --tls --tls-verify --tls-ca-path %s ...\n"
           "  Node:    NODE_EXTRA_CA_CERTS=%s node app.js\n"
           "  Java:    keytool -importcert -noprompt -alias smtpscope -file %s \\\n"
           "             -keystore smtpscope.jks -storepass changeit\n"
           "           java -Djavax.net.ssl.trustStore=smtpscope.jks ...\n"
           "  System (Debian/Ubuntu): cp %s /usr/local/share/ca-certificates/smtpscope.crt\n"
           "           && update-ca-certificates\n"
           "Its key (ca.key, mode 0600) never leaves this machine; remove the directory to\n"
           "make a new CA. Or skip client TLS: smtpscope --client-tls off.\n",
           p, p, p, p, p, p, p);
    tls_ca_free(ca);
    return 0;
}

static int px_setup_tls(struct px_config *cfg, char *err, size_t errlen)
{
    const char *keylog = cfg->keylog != NULL ? cfg->keylog : getenv("SSLKEYLOGFILE");

    if (px_check_file("--ca-file", "CA certificates", cfg->ca_file, err, errlen) != 0 ||
        px_check_file("--cert", "certificate", cfg->cert_file, err, errlen) != 0 ||
        px_check_file("--key", "private key", cfg->key_file, err, errlen) != 0)
        return -1;
    if (tls_config_client_new(&m.px.up_tls, cfg->ca_file, cfg->insecure, err, errlen) != 0 ||
        px_setup_client_cert(cfg, err, errlen) != 0 ||
        tls_config_server_tickets(m.px.client_tls, err, errlen) != 0)
        return -1;
    m.shared.up_session = tls_session_new();
    if (m.shared.up_session == NULL) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    if (keylog != NULL && keylog[0] != '\0') {
        if (tls_keylog_open(&m.keylog, keylog, err, errlen) != 0)
            return -1;
        tls_config_set_keylog(m.px.up_tls, tls_keylog_write, m.keylog);
        tls_config_set_keylog(m.px.client_tls, tls_keylog_write, m.keylog);
        m.px.keylog = m.keylog;
    }
    return 0;
}

/* px_fault_scenario - --fault STAGE=persona:NAME: the persona's words. */
static int px_fault_scenario(void *arg, const char *name, char *reply, size_t cap, char *err,
                             size_t errlen)
{
    return persona_fault_reply(arg, name, reply, cap, err, errlen);
}

/* px_setup_persona - --persona NAME and its scenario, from the tables. */
static int px_setup_persona(const struct px_config *cfg, char *err, size_t errlen)
{
    struct persona_run *run = &m.px.ci.persona;
    char names[512];

    if (cfg->persona == NULL)
        return 0;
    run->p = persona_find(cfg->persona);
    if (run->p == NULL) {
        persona_names(names, sizeof(names));
        snprintf(err, errlen, "--persona %s: no such persona (there is: %s)", cfg->persona, names);
        return -1;
    }
    run->user = cfg->persona_user;
    run->password = cfg->persona_password;
    run->token = cfg->persona_token;
    if (cfg->persona_scenario != NULL) {
        run->scenario = persona_scenario(run->p, cfg->persona_scenario);
        if (run->scenario == NULL) {
            persona_scenario_names(run->p, names, sizeof(names));
            snprintf(err, errlen, "--persona-scenario %s: persona %s has no such scenario (%s)",
                     cfg->persona_scenario, run->p->name, names);
            return -1;
        }
    }
    return 0;
}

/* px_setup_ci - the persona, fault rules, the sink directory, recordings,
 * and so who stands upstream. */
static int px_setup_ci(const struct px_config *cfg, char *err, size_t errlen)
{
    struct stat st;

    if (px_setup_persona(cfg, err, errlen) != 0)
        return -1;
    m.px.ci.faults.scenario = px_fault_scenario;
    m.px.ci.faults.scenario_arg = &m.px.ci.persona;
    m.px.ci.faults.parse_duration = px_parse_duration;
    m.px.ci.faults.rng =
        cfg->seed_given ? cfg->seed : (uint64_t)time(NULL) ^ (uint64_t)getpid() << 20;
    if (m.px.ci.faults.rng == 0)
        m.px.ci.faults.rng = 0x9e3779b97f4a7c15ull;
    for (int i = 0; i < cfg->nfaults; i++)
        if (fault_parse(&m.px.ci.faults, cfg->faults[i], err, errlen) != 0)
            return -1;
    if (cfg->sink_dir != NULL && (stat(cfg->sink_dir, &st) != 0 || !S_ISDIR(st.st_mode) ||
                                  access(cfg->sink_dir, W_OK) != 0)) {
        snprintf(err, errlen, "--sink %s: not a writable directory", cfg->sink_dir);
        return -1;
    }
    if (cfg->record != NULL && record_open(&m.px.ci.recorder, cfg->record, err, errlen) != 0)
        return -1;
    if (cfg->replay != NULL && replay_load(&m.px.ci.replay, cfg->replay, err, errlen) != 0)
        return -1;
    /* who stands upstream, for every session: picked here, once */
    m.px.up_ops = cfg->sink_dir != NULL ? &sink_ops : cfg->replay != NULL ? &replay_ops : &upc_ops;
    if (cfg->sink_auth != NULL && access(cfg->sink_auth, R_OK) != 0) {
        snprintf(err, errlen, "--sink-auth %s: cannot read it", cfg->sink_auth);
        return -1;
    }
    /* --upstream-auth: the password read now, or the token command ready */
    if (secret_open(&m.secret, m.px.loop, &cfg->upauth, err, errlen) != 0)
        return -1;
    m.px.secret = m.secret;
    return 0;
}

/* px_keylog_session - a session's key-log line to the session registry. */
static void px_keylog_session(void *arg, uint64_t session, const char *line, size_t len)
{
    tlog_consumers_wait(); /* the registry has heard of the session (--keylog only) */
    sess_keylog(arg, session, line, len);
}

/* px_setup_http - the HTTP API on its own loop. The default address
 * taken is a warning (said with the start-up lines) and no API; an address
 * given that cannot be used is a start-up error. */
static int px_setup_http(const struct px_config *cfg, char *err, size_t errlen)
{
    struct http_auth *auth = NULL;
    struct http_server_opts o;
    int rc;

    if (cfg->http_off)
        return 0;
    if (cfg->http_auth != NULL && http_auth_load(&auth, cfg->http_auth, err, errlen) != 0)
        return -1;
    memset(&o, 0, sizeof(o));
    o.host = cfg->http_host;
    o.port = cfg->http_port;
    o.names = cfg->http_names;
    o.nnames = (size_t)cfg->nhttp_names;
    o.cors_origin = cfg->http_cors;
    o.auth = auth; /* the server's now, even if it fails */
    o.idle_ms = cfg->http_idle_ms;
    o.before = tlog_consumers_wait; /* what a client heard, the API shows */
    if (px_http_loop_init(&m.hl, px_http_close, NULL, err, errlen) != 0) {
        http_auth_free(auth);
        return -1;
    }
    rc = http_server_new(&m.http, &m.hl.loop, &o, err, errlen);
    if (rc == UV_EADDRINUSE && !cfg->http_given) {
        snprintf(m.http_note, sizeof(m.http_note),
                 "no HTTP API: its default address %s:%s is taken (another smtpscope or a mail "
                 "catcher?); --http HOST:PORT picks another, --http off says you want none",
                 cfg->http_host, cfg->http_port);
        px_http_loop_stop(&m.hl); /* nothing to run: the loop ends now */
        px_http_loop_end(&m.hl);
        m.http = NULL;
        return 0;
    }
    if (rc != 0)
        return -1;
    snprintf(m.upstream, sizeof(m.upstream), "%s:%s", cfg->up_host, cfg->up_port);
    m.http_info = (struct http_info){
        .version = PX_VERSION,
        .started_us = tlog_now_us(),
        .smtp_listen = m.listener.addr, /* filled by px_listen, read per request */
        .mode = cfg->sink_dir != NULL ? "sink"
                : cfg->replay != NULL ? "replay"
                                      : "relay",
        .upstream = cfg->sink_dir == NULL && cfg->replay == NULL ? m.upstream : NULL,
        .faults = cfg->nfaults,
        .mailbox = m.mbox != NULL ? mbox_view_info : NULL,
        .mailbox_arg = m.mbox,
    };
    if (http_info_routes(m.http, &m.http_info) != 0 || http_ui_routes(m.http) != 0 ||
        (m.mbox != NULL && api_open(&m.api, m.http, &m.hl.loop, m.mbox) != 0)) {
        snprintf(err, errlen, "the HTTP API's routes could not be set up");
        return -1;
    }
    if (m.mbox == NULL)
        return 0; /* --keep 0: no sessions kept either */
    if (sess_open(&m.sessions, m.mbox, (size_t)cfg->keep, cfg->show_secrets, err, errlen) != 0)
        return -1;
    /* a session's pcap and key-log lines, for its downloads, only when the
     * user asked for those outputs (the key log: the TLS sessions' secrets) */
    sess_keep_outputs(m.sessions, cfg->pcap != NULL, m.keylog != NULL);
    if (m.keylog != NULL) {
        m.px.keylog_session = px_keylog_session;
        m.px.keylog_session_arg = m.sessions;
    }
    if (sessapi_routes(m.http, m.sessions) != 0 ||
        events_open(&m.events, m.http, &m.hl.loop, m.mbox, m.sessions) != 0) {
        snprintf(err, errlen, "the HTTP API's routes could not be set up");
        return -1;
    }
    return 0;
}

/* px_setup_mailbox - the store of kept messages and its collector, unless
 * --keep 0. */
static int px_setup_mailbox(const struct px_config *cfg, char *err, size_t errlen)
{
    if (cfg->keep == 0)
        return 0;
    if (mbox_new(&m.mbox, (size_t)cfg->keep, cfg->keep_bytes) != 0) {
        snprintf(err, errlen, "the mailbox: out of memory");
        return -1;
    }
    return mbox_collect_open(&m.collect, m.mbox, err, errlen);
}

/* px_load_sink - in sink mode the sink directory is the persistent store:
 * the messages it holds go into the mailbox, after the transcript is set
 * up (what is skipped is a warning there) and before any session can add
 * a newer one. Never fails. */
static int px_load_sink(const struct px_config *cfg)
{
    if (cfg->sink_dir != NULL && m.mbox != NULL)
        mbox_load_sink(m.mbox, cfg->sink_dir, (size_t)cfg->keep);
    return 0;
}

/* px_start_http - the HTTP API's thread, once what it serves is set up
 * (the SMTP address it reports too); sessions start after it. */
static int px_start_http(char *err, size_t errlen)
{
    if (m.http == NULL)
        return 0;
    if (px_http_loop_start(&m.hl, err, errlen) != 0) {
        px_listener_close(&m.listener);
        return -1;
    }
    return 0;
}

/* px_start_consumers - the mailbox's (and --record's) work on a thread of
 * its own, off the relays' (before they run). Without it the relays'
 * threads do that work themselves: a warning, not a failure. */
static int px_start_consumers(void)
{
    char why[160];

    if (tlog_has_consumer() && tlog_consumers_start(why, sizeof(why)) != 0)
        tlog_note(0, TLOG_WARNING, "%s: the relay's threads keep messages themselves", why);
    return 0;
}

/* px_start_loops - the other event loops of --loops N. */
static int px_start_loops(const struct px_config *cfg, char *err, size_t errlen)
{
    if (cfg->loops <= 1)
        return 0;
    if (!tls_threads_safe()) {
        snprintf(err, errlen,
                 "--loops: this mbedTLS build cannot share a TLS configuration "
                 "between threads (it needs 2.28 with MBEDTLS_THREADING_C)");
        px_listener_close(&m.listener);
        return -1;
    }
    uv_async_init(m.px.loop, &m.loop_ended, px_loop_ended_cb);
    if (px_loops_start(&m.loops, cfg->loops - 1, &m.px, &m.listener, &m.loop_ended, err, errlen) !=
        0) {
        uv_close((uv_handle_t *)&m.loop_ended, NULL);
        px_listener_close(&m.listener);
        return -1;
    }
    return 0;
}

static void px_cleanup(void)
{
    tls_config_free(m.px.up_tls);
    tls_config_free(m.px.client_tls);
    tls_ca_free(m.ca);
    tls_keylog_close(m.keylog);
    record_close(m.px.ci.recorder);
    mbox_collect_close(m.collect);
    sess_close(m.sessions);
    events_free(m.events);
    api_free(m.api);
    mbox_free(m.mbox);
    mbox_mime_shutdown();
    tls_session_free(m.shared.up_session);
    secret_free(m.secret);
    replay_free(m.px.ci.replay);
    tlog_close_all();
}

int main(int argc, char **argv)
{
    struct px_config cfg;
    char err[600], loops_text[32] = "";
    size_t hostlen = sizeof(m.px.helo);

    if (argc > 1 && strcmp(argv[1], "check") == 0)
        return tlog_check_main(argc - 1, argv + 1);
    if (argc > 1 && strcmp(argv[1], "ca") == 0)
        return px_ca_main(argc - 1, argv + 1);
    switch (px_config_parse(&cfg, argc, argv, stdout, stderr)) {
    case PX_PARSE_EXIT_OK:
        return 0;
    case PX_PARSE_EXIT_USAGE:
        return 2;
    case PX_PARSE_RUN:
        break;
    }
    signal(SIGPIPE, SIG_IGN);
    px_more_files();
    px_tune_malloc();
    m.px.cfg = &cfg;
    m.px.loop = uv_default_loop();
    m.px.shared = &m.shared;
    m.px.loop_no = 1;
    m.px.on_idle = px_idle_cb;
    if (cfg.helo != NULL)
        snprintf(m.px.helo, sizeof(m.px.helo), "%s", cfg.helo);
    else if (uv_os_gethostname(m.px.helo, &hostlen) != 0)
        snprintf(m.px.helo, sizeof(m.px.helo), "localhost");

    if (px_setup_ci(&cfg, err, sizeof(err)) != 0 || px_setup_mailbox(&cfg, err, sizeof(err)) != 0 ||
        px_setup_transcript(&cfg, err, sizeof(err)) != 0 || px_load_sink(&cfg) != 0 ||
        px_setup_tls(&cfg, err, sizeof(err)) != 0 || px_setup_http(&cfg, err, sizeof(err)) != 0 ||
        px_listen(&m.listener, &m.px, cfg.listen_host, cfg.listen_port, cfg.loops > 1, err,
                  sizeof(err)) != 0 ||
        px_start_http(err, sizeof(err)) != 0 || px_start_consumers() != 0 ||
        px_start_loops(&cfg, err, sizeof(err)) != 0) {
        fprintf(stderr, "smtpscope: %s\n", err);
        tlog_consumers_stop();
        px_http_loop_stop(&m.hl);
        px_http_loop_end(&m.hl);
        uv_run(m.px.loop, UV_RUN_DEFAULT);
        uv_loop_close(m.px.loop);
        px_cleanup();
        return 2;
    }
    uv_signal_init(m.px.loop, &m.sigint);
    uv_signal_init(m.px.loop, &m.sigterm);
    uv_timer_init(m.px.loop, &m.grace);
    uv_signal_start(&m.sigint, px_signal_cb, SIGINT);
    uv_signal_start(&m.sigterm, px_signal_cb, SIGTERM);
    uv_prepare_init(m.px.loop, &m.flush);
    uv_prepare_start(&m.flush, px_flush_cb);
    if (cfg.loops > 1)
        snprintf(loops_text, sizeof(loops_text), "; %u event loops", cfg.loops);

    if (cfg.replay != NULL)
        tlog_note(0, TLOG_INFO, "smtpscope %s listening on %s, replaying %s (%zu session(s))",
                  PX_VERSION, m.listener.addr, cfg.replay, m.px.ci.replay->n);
    else if (cfg.sink_dir != NULL)
        tlog_note(0, TLOG_INFO,
                  "smtpscope %s listening on %s, sink mode: messages stored in %s (client "
                  "STARTTLS %s; AUTH %s)",
                  PX_VERSION, m.listener.addr, cfg.sink_dir,
                  cfg.client_tls == PX_CLIENT_TLS_OFFER     ? "offered"
                  : cfg.client_tls == PX_CLIENT_TLS_REQUIRE ? "required before AUTH and MAIL"
                                                            : "off",
                  cfg.sink_auth != NULL ? "checked"
                  : cfg.persona != NULL ? "as the persona says, below"
                                        : "any credentials accepted");
    else
        tlog_note(0, TLOG_INFO,
                  "smtpscope %s listening on %s, relaying to %s:%s (%s, certificate %s; client "
                  "STARTTLS %s)%s",
                  PX_VERSION, m.listener.addr, cfg.up_host, cfg.up_port,
                  cfg.up_tls == PX_UP_IMPLICIT ? "implicit TLS" : "STARTTLS",
                  cfg.insecure ? "NOT verified (--insecure)" : "verified",
                  cfg.client_tls == PX_CLIENT_TLS_OFFER     ? "offered"
                  : cfg.client_tls == PX_CLIENT_TLS_REQUIRE ? "required before AUTH and MAIL"
                                                            : "off",
                  loops_text);
    if (m.ca_note[0] != '\0')
        tlog_note(0, m.ca != NULL ? TLOG_INFO : TLOG_WARNING, "%s", m.ca_note);
    if (m.http != NULL)
        tlog_note(0, TLOG_INFO, "HTTP API on %s%s", http_server_url(m.http),
                  http_server_loopback(m.http)
                      ? ""
                      : " (not a loopback address: every request needs --http-auth credentials, "
                        "and they cross the network in the clear)");
    else if (m.http_note[0] != '\0')
        tlog_note(0, TLOG_WARNING, "%s", m.http_note);
    if (cfg.sink_dir == NULL && cfg.replay == NULL) {
        unsigned char ip[16];
        if (!cfg.insecure &&
            (inet_pton(AF_INET, cfg.up_host, ip) == 1 || inet_pton(AF_INET6, cfg.up_host, ip) == 1))
            tlog_note(0, TLOG_WARNING,
                      "--upstream %s is an address: the upstream's certificate is checked against "
                      "it, and certificates name hosts, so unless this one lists %s every session "
                      "will fail verification; give the name on the certificate (e.g. "
                      "--upstream smtp.example.com:%s)",
                      cfg.up_host, cfg.up_host, cfg.up_port);
        /* RFC 8314 3.3: 465 is implicit TLS; 25 and 587 speak STARTTLS */
        int p = atoi(cfg.up_port);
        if (cfg.up_tls == PX_UP_STARTTLS && p == 465)
            tlog_note(0, TLOG_WARNING,
                      "upstream port 465 usually expects implicit TLS, and with --upstream-tls "
                      "starttls smtpscope waits for a plaintext greeting that will not come; "
                      "use --upstream-tls implicit");
        else if (cfg.up_tls == PX_UP_IMPLICIT && (p == 25 || p == 587))
            tlog_note(0, TLOG_WARNING,
                      "upstream port %d usually speaks STARTTLS (a plaintext greeting first), and "
                      "--upstream-tls implicit will fail its TLS handshake; use --upstream-tls "
                      "starttls",
                      p);
    }
    if (!px_addr_is_loopback((const struct sockaddr *)&m.listener.bound))
        tlog_note(0, TLOG_WARNING,
                  "listening on %s, which is not a loopback address (--allow-remote): anyone "
                  "who can reach it can send mail through %s%s",
                  m.listener.addr,
                  cfg.sink_dir != NULL || cfg.replay != NULL ? "this smtpscope"
                                                             : "your upstream session",
                  cfg.show_secrets ? ", and with --show-secrets their credentials are logged" : "");
    if (m.px.ci.persona.p != NULL) {
        const struct persona_run *run = &m.px.ci.persona;
        tlog_note(0, TLOG_INFO,
                  "persona %s: smtpscope answers as %s would, offline, with made-up ids (user %s; "
                  "password %s; token %s)%s%s",
                  run->p->name, run->p->about, run->user != NULL ? run->user : "any",
                  run->password != NULL ? "given"
                  : run->token != NULL  ? "none accepted"
                                        : "any",
                  run->token != NULL      ? "given"
                  : run->password != NULL ? "none accepted"
                                          : "any",
                  run->scenario != NULL ? "; scenario " : "",
                  run->scenario != NULL ? run->scenario->name : "");
    }
    for (int i = 0; i < m.px.ci.faults.n; i++)
        tlog_note(0, TLOG_INFO, "fault rule %d: %s", i + 1, m.px.ci.faults.rules[i].spec);

    tlog_defer_consumers(1); /* heard at each turn's end (tlog_flush), or sooner */
    uv_run(m.px.loop, UV_RUN_DEFAULT);
    tlog_defer_consumers(0);
    px_loops_join(&m.loops);
    /* what the relays' threads published is heard; then no store change
     * wakes the HTTP loop's handles (api_notify), which stay open until here */
    tlog_consumers_stop();
    px_http_loop_stop(&m.hl); /* stopped already, unless no signal came */
    px_http_loop_end(&m.hl);
    if (cfg.loops > 1) {
        uv_close((uv_handle_t *)&m.loop_ended, NULL);
        uv_run(m.px.loop, UV_RUN_DEFAULT);
    }
    tlog_flush();
    /* no uv_loop_close: the signal handles are still open (px_finish), and
     * the loop is the default one, which the process ends with */
    px_cleanup();
    return 0;
}
