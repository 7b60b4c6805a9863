/*
 * main - smtpscope's entry: options, TLS set-up, the listener, signals.
 *
 * Start-up errors print one line and exit 2. SIGINT/SIGTERM stop accepting,
 * tell open sessions 421 and close them; the loop then runs dry, everything
 * is freed and the exit status is 0.
 */
#include "../log/transcript.h"
#include "config.h"
#include "listener.h"
#include "session.h"

#include <signal.h>
#include <stdio.h>
#include <string.h>

struct px_main {
    struct proxy px;
    struct px_listener listener;
    uv_signal_t sigint, sigterm;
};

static void px_signal_cb(uv_signal_t *h, int signum)
{
    struct px_main *m = h->data;

    if (m->px.stopping)
        return;
    m->px.stopping = 1;
    tlog_note(0, TLOG_INFO, "%s: shutting down", signum == SIGINT ? "SIGINT" : "SIGTERM");
    px_listener_close(&m->listener);
    session_stop_all(&m->px);
    uv_close((uv_handle_t *)&m->sigint, NULL);
    uv_close((uv_handle_t *)&m->sigterm, NULL);
}

int main(int argc, char **argv)
{
    static struct px_main m;
    struct px_config cfg;
    char err[600];
    size_t hostlen = sizeof(m.px.helo);
    int rc;

    switch (px_config_parse(&cfg, argc, argv, stdout, stderr)) {
    case PX_PARSE_EXIT_OK:
        return 0;
    case PX_PARSE_EXIT_USAGE:
        return 2;
    case PX_PARSE_RUN:
        break;
    }
    signal(SIGPIPE, SIG_IGN);
    struct tlog_options topts = {.show_secrets = cfg.show_secrets, .console = stdout};
    tlog_init(&topts);

    m.px.cfg = &cfg;
    m.px.loop = uv_default_loop();
    if (cfg.helo != NULL)
        snprintf(m.px.helo, sizeof(m.px.helo), "%s", cfg.helo);
    else if (uv_os_gethostname(m.px.helo, &hostlen) != 0)
        snprintf(m.px.helo, sizeof(m.px.helo), "localhost");

    if (tls_config_client_new(&m.px.up_tls, cfg.ca_file, cfg.insecure, err, sizeof(err)) != 0 ||
        tls_config_server_new(&m.px.client_tls, cfg.cert_file, cfg.key_file, err,
                              sizeof(err)) != 0) {
        fprintf(stderr, "smtpscope: %s\n", err);
        tls_config_free(m.px.up_tls);
        return 2;
    }
    if (px_listen(&m.listener, &m.px, cfg.listen_host, cfg.listen_port, err, sizeof(err)) != 0) {
        fprintf(stderr, "smtpscope: %s\n", err);
        uv_run(m.px.loop, UV_RUN_DEFAULT);
        uv_loop_close(m.px.loop);
        tls_config_free(m.px.up_tls);
        tls_config_free(m.px.client_tls);
        return 2;
    }
    uv_signal_init(m.px.loop, &m.sigint);
    uv_signal_init(m.px.loop, &m.sigterm);
    m.sigint.data = m.sigterm.data = &m;
    uv_signal_start(&m.sigint, px_signal_cb, SIGINT);
    uv_signal_start(&m.sigterm, px_signal_cb, SIGTERM);

    tlog_note(0, TLOG_INFO,
              "smtpscope %s listening on %s, relaying to %s:%s (%s, certificate %s; client "
              "STARTTLS %s)",
              PX_VERSION, m.listener.addr, cfg.up_host, cfg.up_port,
              cfg.up_tls == PX_UP_IMPLICIT ? "implicit TLS" : "STARTTLS",
              cfg.insecure ? "NOT verified (--insecure)" : "verified",
              cfg.client_tls == PX_CLIENT_TLS_OFFER ? "offered" : "off");

    rc = uv_run(m.px.loop, UV_RUN_DEFAULT);
    (void)rc;
    uv_loop_close(m.px.loop);
    tls_config_free(m.px.up_tls);
    tls_config_free(m.px.client_tls);
    return 0;
}
