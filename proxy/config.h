/*
 * config - the command line: options, defaults, validation with messages a
 * user can act on.
 */
#ifndef SMTPSCOPE_CONFIG_H
#define SMTPSCOPE_CONFIG_H

#include <stdint.h>
#include <stdio.h>

#define PX_VERSION "0.1.0"

enum px_upstream_tls { PX_UP_STARTTLS, PX_UP_IMPLICIT };
enum px_client_tls { PX_CLIENT_TLS_OFFER, PX_CLIENT_TLS_OFF, PX_CLIENT_TLS_REQUIRE };
enum px_bare_lf { PX_BARE_LF_NORMALIZE, PX_BARE_LF_REJECT };
enum px_format { PX_FORMAT_CONSOLE, PX_FORMAT_SMTPLIB, PX_FORMAT_SMTPLIB2 };

/* Timeouts in milliseconds; defaults are RFC 5321 4.5.3.2's minimums. */
struct px_timeouts {
    uint64_t connect;  /* each upstream address */
    uint64_t greeting; /* the upstream's 220 (4.5.3.2.1: 5 min) */
    uint64_t command;  /* any other upstream reply (4.5.3.2.2-4: 5 min) */
    uint64_t data;     /* client silent inside DATA/BDAT (4.5.3.2.5: 3 min) */
    uint64_t final;    /* the reply to end of data (4.5.3.2.6: 10 min) */
    uint64_t idle;     /* client silent between commands (4.5.3.2.7: 5 min) */
};

/* ---- smtpscope's own login to the upstream (--upstream-auth ...) and what
 * the client may do with AUTH (--client-auth) ---- */
enum px_client_auth {
    PX_CLIENT_AUTH_PASSTHROUGH, /* the client's AUTH is relayed (without --upstream-auth) */
    PX_CLIENT_AUTH_NONE,        /* AUTH is not offered to the client, and refused */
    PX_CLIENT_AUTH_ACCEPT,      /* AUTH PLAIN LOGIN offered, any credentials taken here */
};
/* the mechanisms smtpscope logs in with, in auto's order of preference */
enum px_up_mech {
    PX_MECH_XOAUTH2,
    PX_MECH_OAUTHBEARER,
    PX_MECH_PLAIN,
    PX_MECH_LOGIN,
    PX_MECH_COUNT
};
#define PX_TOKEN_TIMEOUT_DEFAULT_MS 30000 /* --upstream-token-timeout */

struct px_upauth {
    int on;                               /* --upstream-auth given */
    int auto_mech;                        /* ... as auto */
    enum px_up_mech mechs[PX_MECH_COUNT]; /* those allowed, best first (auto: resolved) */
    int nmechs;
    const char *user;          /* --upstream-user */
    const char *password_file; /* the secret: exactly one of these three */
    const char *password_env;
    const char *token_cmd;
    uint64_t token_timeout_ms;
    enum px_client_auth client_auth;
    int client_auth_given;
};

/* px_mech_name - "XOAUTH2", "PLAIN", ... */
const char *px_mech_name(enum px_up_mech m);

struct px_config {
    char listen_host[256];
    char listen_port[16];
    char up_host[256];
    char up_port[16];
    enum px_upstream_tls up_tls;
    const char *ca_file; /* NULL: the system bundle */
    int insecure;
    enum px_client_tls client_tls;
    const char *cert_file;
    const char *key_file;
    int show_secrets;
    int allow_remote; /* --allow-remote: a non-loopback --listen address */
    long body_lines;
    const char *helo; /* NULL: this machine's host name */
    int trace;        /* state changes in the transcript */
    enum px_bare_lf bare_lf;
    unsigned max_sessions;
    unsigned loops; /* --loops: event loops (threads), each with a listener */
    struct px_timeouts timeouts;
    const char *json;           /* --json PATH, "-" for stdout */
    const char *transcript_dir; /* --transcript-dir DIR */
    const char *keylog;         /* --keylog PATH, else $SSLKEYLOGFILE */
    const char *pcap;           /* --pcap PATH */
    int explain;                /* -1: on a terminal only */
    int color;                  /* -1: auto (a terminal and no NO_COLOR) */
    int quiet;
    enum px_format format;  /* --format: the console's form */
    uint64_t grace_ms;      /* at SIGINT/SIGTERM, sessions may finish this long */
    const char *sink_dir;   /* --sink DIR: no upstream, smtpscope is the server */
    const char *sink_auth;  /* --sink-auth FILE: user:password lines */
    const char *faults[64]; /* --fault rules as given */
    int nfaults;
    uint64_t seed;
    int seed_given;
    const char *record; /* --record FILE */
    const char *replay; /* --replay FILE */
    /* the HTTP API */
    int http_off;               /* --http off */
    int http_given;             /* --http given: not listening there is a start-up error */
    char http_host[256];        /* --http HOST:PORT */
    char http_port[16];
    const char *http_names[16]; /* --http-host NAME: more Host names the API answers to */
    int nhttp_names;
    const char *http_cors;      /* --http-cors ORIGIN */
    const char *http_auth;      /* --http-auth FILE */
    uint64_t http_idle_ms;      /* $SMTPSCOPE_HTTP_IDLE (tests only); 0: the default */
    uint64_t keep;       /* --keep N: messages kept in memory (0: none) */
    uint64_t keep_bytes; /* --keep-bytes SIZE: their raw bytes at most */

    /* --persona (sink and replay modes): a provider's words, offline */
    const char *persona;          /* --persona NAME */
    const char *persona_user;     /* --persona-user USER: the only user accepted */
    const char *persona_password; /* --persona-password PASS: PLAIN and LOGIN */
    const char *persona_token;    /* --persona-token TOKEN: XOAUTH2 and OAUTHBEARER */
    const char *persona_scenario; /* --persona-scenario NAME: a failure for the run */
    struct px_upauth upauth; /* smtpscope's own login upstream, --client-auth */
};

enum px_parse_result { PX_PARSE_RUN, PX_PARSE_EXIT_OK, PX_PARSE_EXIT_USAGE };

/* px_config_parse - fill cfg from argv; on --help/--version prints and says
 * EXIT_OK, on a bad option prints one line to err and says EXIT_USAGE. */
enum px_parse_result px_config_parse(struct px_config *cfg, int argc, char **argv, FILE *out,
                                     FILE *err);
/* px_parse_duration - "30", "30s", "500ms", "5m", "1h" to milliseconds. */
int px_parse_duration(const char *s, uint64_t *ms);
/* px_parse_size - "1048576", "512K", "256M", "1G" (powers of 1024) to
 * bytes; 0 or -1. */
int px_parse_size(const char *s, uint64_t *bytes);
/* px_split_hostport - "host:port", "[v6]:port"; 0 or -1. */
int px_split_hostport(const char *s, char *host, size_t hostlen, char *port, size_t portlen);

#endif
