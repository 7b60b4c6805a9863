/*
 * config - argv to struct px_config with getopt_long.
 *
 * Every malformed or unknown option gets one line naming it and what was
 * expected, and exit status 2; nothing is guessed.
 */
#include "config.h"
#include "../mailbox/store.h"

#include <errno.h>
#include <stdio.h>
#include <getopt.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define PX_DEFAULT_LISTEN       "127.0.0.1:2525"
#define PX_DEFAULT_UPSTREAM     "smtp.gmail.com:587"
#define PX_DEFAULT_BODY         20
#define PX_DEFAULT_MAX_SESSIONS 1000
#define PX_DEFAULT_HTTP         "127.0.0.1:8025"
#define PX_KEEP_MAX             10000000ull  /* --keep */
#define PX_KEEP_BYTES_MAX       (1ull << 40) /* --keep-bytes: 1 TiB */

enum {
    OPT_LISTEN = 256,
    OPT_ALLOW_REMOTE,
    OPT_UPSTREAM,
    OPT_UPSTREAM_TLS,
    OPT_CA_FILE,
    OPT_INSECURE,
    OPT_CLIENT_TLS,
    OPT_CERT,
    OPT_KEY,
    OPT_SHOW_SECRETS,
    OPT_BODY_LINES,
    OPT_HELO,
    OPT_TRACE,
    OPT_BARE_LF,
    OPT_MAX_SESSIONS,
    OPT_LOOPS,
    OPT_T_CONNECT,
    OPT_T_GREETING,
    OPT_T_COMMAND,
    OPT_T_DATA,
    OPT_T_FINAL,
    OPT_T_IDLE,
    OPT_JSON,
    OPT_TDIR,
    OPT_KEYLOG,
    OPT_PCAP,
    OPT_EXPLAIN,
    OPT_NO_EXPLAIN,
    OPT_COLOR,
    OPT_QUIET,
    OPT_FORMAT,
    OPT_GRACE,
    OPT_SINK,
    OPT_SINK_AUTH,
    OPT_FAULT,
    OPT_SEED,
    OPT_RECORD,
    OPT_REPLAY,
    OPT_HTTP,
    OPT_HTTP_HOST,
    OPT_HTTP_CORS,
    OPT_HTTP_AUTH,
    OPT_KEEP,
    OPT_KEEP_BYTES,
    /* --persona */
    OPT_PERSONA,
    OPT_PERSONA_USER,
    OPT_PERSONA_PASSWORD,
    OPT_PERSONA_TOKEN,
    OPT_PERSONA_SCENARIO,
};

static const struct option px_options[] = {
    {"listen", required_argument, NULL, OPT_LISTEN},
    {"allow-remote", no_argument, NULL, OPT_ALLOW_REMOTE},
    {"upstream", required_argument, NULL, OPT_UPSTREAM},
    {"upstream-tls", required_argument, NULL, OPT_UPSTREAM_TLS},
    {"ca-file", required_argument, NULL, OPT_CA_FILE},
    {"insecure", no_argument, NULL, OPT_INSECURE},
    {"client-tls", required_argument, NULL, OPT_CLIENT_TLS},
    {"cert", required_argument, NULL, OPT_CERT},
    {"key", required_argument, NULL, OPT_KEY},
    {"show-secrets", no_argument, NULL, OPT_SHOW_SECRETS},
    {"body-lines", required_argument, NULL, OPT_BODY_LINES},
    {"helo", required_argument, NULL, OPT_HELO},
    {"trace", no_argument, NULL, OPT_TRACE},
    {"bare-lf", required_argument, NULL, OPT_BARE_LF},
    {"max-sessions", required_argument, NULL, OPT_MAX_SESSIONS},
    {"loops", required_argument, NULL, OPT_LOOPS},
    {"timeout-connect", required_argument, NULL, OPT_T_CONNECT},
    {"timeout-greeting", required_argument, NULL, OPT_T_GREETING},
    {"timeout-command", required_argument, NULL, OPT_T_COMMAND},
    {"timeout-data", required_argument, NULL, OPT_T_DATA},
    {"timeout-final", required_argument, NULL, OPT_T_FINAL},
    {"timeout-idle", required_argument, NULL, OPT_T_IDLE},
    {"json", required_argument, NULL, OPT_JSON},
    {"transcript-dir", required_argument, NULL, OPT_TDIR},
    {"keylog", required_argument, NULL, OPT_KEYLOG},
    {"pcap", required_argument, NULL, OPT_PCAP},
    {"explain", no_argument, NULL, OPT_EXPLAIN},
    {"no-explain", no_argument, NULL, OPT_NO_EXPLAIN},
    {"color", required_argument, NULL, OPT_COLOR},
    {"quiet", no_argument, NULL, OPT_QUIET},
    {"format", required_argument, NULL, OPT_FORMAT},
    {"grace", required_argument, NULL, OPT_GRACE},
    {"sink", required_argument, NULL, OPT_SINK},
    {"sink-auth", required_argument, NULL, OPT_SINK_AUTH},
    {"fault", required_argument, NULL, OPT_FAULT},
    {"seed", required_argument, NULL, OPT_SEED},
    {"record", required_argument, NULL, OPT_RECORD},
    {"replay", required_argument, NULL, OPT_REPLAY},
    {"http", required_argument, NULL, OPT_HTTP},
    {"http-host", required_argument, NULL, OPT_HTTP_HOST},
    {"http-cors", required_argument, NULL, OPT_HTTP_CORS},
    {"http-auth", required_argument, NULL, OPT_HTTP_AUTH},
    {"keep", required_argument, NULL, OPT_KEEP},
    {"keep-bytes", required_argument, NULL, OPT_KEEP_BYTES},
    {"persona", required_argument, NULL, OPT_PERSONA},
    {"persona-user", required_argument, NULL, OPT_PERSONA_USER},
    {"persona-password", required_argument, NULL, OPT_PERSONA_PASSWORD},
    {"persona-token", required_argument, NULL, OPT_PERSONA_TOKEN},
    {"persona-scenario", required_argument, NULL, OPT_PERSONA_SCENARIO},
    {"help", no_argument, NULL, 'h'},
    {"version", no_argument, NULL, 'V'},
    {NULL, 0, NULL, 0},
};

static const char px_usage[] =
    "Usage: smtpscope [OPTIONS]\n"
    "\n"
    "A debugging SMTP proxy: clients speak plaintext SMTP to the local port,\n"
    "smtpscope relays every command over its own verified TLS session to the\n"
    "real server and prints the whole conversation live, in the form of Python\n"
    "smtplib's debug output (send: '...' / reply: b'...').\n"
    "\n"
    "Options:\n"
    "  --listen HOST:PORT         where clients connect (default " PX_DEFAULT_LISTEN ");\n"
    "                             [::1]:2525 for IPv6, port 0 for any free port, a\n"
    "                             port alone for 127.0.0.1; loopback only unless\n"
    "  --allow-remote             a non-loopback --listen address is allowed: anyone\n"
    "                             who reaches it relays through your upstream\n"
    "  --upstream HOST:PORT       the real server (default " PX_DEFAULT_UPSTREAM ")\n"
    "  --upstream-tls MODE        starttls or implicit (default: implicit for port 465,\n"
    "                             starttls otherwise); never plaintext\n"
    "  --ca-file PATH             trust anchors for the upstream certificate\n"
    "                             (default /etc/ssl/certs/ca-certificates.crt)\n"
    "  --insecure                 do not verify the upstream certificate (every\n"
    "                             session's transcript says so)\n"
    "  --client-tls offer|require|off\n"
    "                             offer STARTTLS to clients with smtpscope's own\n"
    "                             certificate (default offer); require: AUTH and\n"
    "                             MAIL before STARTTLS get 530 5.7.0, as Gmail does\n"
    "  --cert PATH --key PATH     that certificate and key, PEM (default: a fresh\n"
    "                             self-signed one made at start-up)\n"
    "  --show-secrets             show AUTH credentials (default: redacted)\n"
    "  --body-lines N             message lines shown per message (default 20);\n"
    "                             the message is always relayed whole\n"
    "  --helo NAME                the name in smtpscope's own EHLO to the upstream\n"
    "                             (default: this machine's host name)\n"
    "  --trace                    also show state changes of both SMTP machines\n"
    "  --bare-lf normalize|reject  message lines with a bare LF, bare CR or NUL:\n"
    "                             normalize re-frames them with CRLF (default);\n"
    "                             reject answers 550 5.6.0 and never commits\n"
    "  --max-sessions N           concurrent sessions; over it 421 4.3.2 (default 1000)\n"
    "  --loops N                  N event loops on N threads, each listening on the\n"
    "                             port (SO_REUSEPORT): more than one core for TLS\n"
    "                             under load; relay mode only (default 1)\n"
    "  --timeout-connect T        each upstream address (default 30s)\n"
    "  --timeout-greeting T       the upstream's greeting (default 5m)\n"
    "  --timeout-command T        any other upstream reply (default 5m)\n"
    "  --timeout-data T           client silent inside message content (default 3m)\n"
    "  --timeout-final T          the reply to end of data (default 10m)\n"
    "  --timeout-idle T           client silent between commands (default 5m)\n"
    "                             T: 30, 30s, 500ms, 5m or 1h\n";

static const char px_usage_rest[] =
    "\n"
    "Transcripts:\n"
    "  --json PATH                JSON Lines, one object per event ('-': stdout);\n"
    "                             schema in docs/transcript-json.md\n"
    "  --transcript-dir DIR       one transcript file per session (0600)\n"
    "  --keylog PATH              NSS key log of both legs for Wireshark (0600,\n"
    "                             appended; default $SSLKEYLOGFILE if set)\n"
    "  --pcap PATH                both legs' plaintext SMTP as a pcap\n"
    "  --explain, --no-explain    learner notes (default: on a terminal)\n"
    "  --color never|always|auto  colour (default auto: a terminal, no NO_COLOR)\n"
    "  --quiet                    console: only warnings and session summaries\n"
    "  --format FORM              the console's form (and --transcript-dir's):\n"
    "                             smtpscope (default), smtplib: the client leg\n"
    "                             exactly as smtplib.set_debuglevel(1) prints it,\n"
    "                             smtplib2: as set_debuglevel(2), with timestamps;\n"
    "                             smtpscope's warnings and errors go to stderr\n"
    "  --grace T                  at SIGINT/SIGTERM open sessions may finish for\n"
    "                             this long (default 5s); a second signal ends now\n"
    "\n"
    "Mailbox:\n"
    "  --keep N                   keep the last N messages clients sent, in memory,\n"
    "                             with the upstream's verdict (default 1000; 0: none),\n"
    "                             and with the HTTP API the last N sessions (at most\n"
    "                             1000) with their transcripts\n"
    "  --keep-bytes SIZE          and at most SIZE of the messages' bytes (default\n"
    "                             256M; K, M, G); the oldest go first. In sink mode\n"
    "                             the sink directory's messages are loaded at start\n"
    "\n"
    "CI mode:\n"
    "  --sink DIR                 no upstream: smtpscope is the server and stores each\n"
    "                             message as DIR/*.eml plus a line in DIR/index.jsonl\n"
    "  --sink-auth FILE           check AUTH against user:password lines (default:\n"
    "                             any credentials are accepted)\n"
    "  --fault 'STAGE[:GLOB]=ACTION[@N%][#K]'  inject a fault (repeatable); STAGE is\n"
    "                             connect, ehlo, starttls, auth, mail, rcpt, data or\n"
    "                             eod; ACTION a reply line ('451 4.3.0 try later'),\n"
    "                             drop, delay=500ms or tls-fail (starttls); @N% fires\n"
    "                             with that probability, #K on the K-th match only\n"
    "  --seed N                   seed for @N% (default: from the clock)\n"
    "  --record FILE              write the upstream's side of every session (its\n"
    "                             replies and their delays, AUTH redacted)\n"
    "  --replay FILE              no upstream: play a recording offline (client\n"
    "                             session N plays recorded session N, in turn)\n"
    "  smtpscope check --help     assertions over a JSON transcript or a sink\n"
    "\n"
    "Personas (--sink or --replay; replies are smtpscope's own, in a provider's words):\n"
    "  --persona gmail            answer as smtp.gmail.com:587 does: its greeting, EHLO\n"
    "                             lists, STARTTLS before AUTH and MAIL, AUTH before\n"
    "                             MAIL, XOAUTH2, its replies and ids (made up)\n"
    "  --persona-user USER        the one user it accepts (default: any)\n"
    "  --persona-password PASS    the password it accepts for PLAIN and LOGIN\n"
    "                             (default: any, unless only a token is given)\n"
    "  --persona-token TOKEN      the token it accepts for XOAUTH2 and OAUTHBEARER\n"
    "                             (default: any, unless only a password is given)\n"
    "  --persona-scenario NAME    a failure for the whole run (sink mode), at its stage:\n"
    "                             bad-credentials, app-password-required and\n"
    "                             too-many-logins at AUTH, daily-limit at MAIL,\n"
    "                             too-large at the end of data, try-again-later at\n"
    "                             connect; or per rule: --fault 'STAGE=persona:NAME'\n"
    "\n"
    "HTTP API (the web page at /; Mailpit's API v1 paths; /api/v1/sessions,\n"
    "/api/v1/session/ID[/transcript|/pcap|/keylog] (pcap with --pcap, key log with\n"
    "--keylog), /api/events (Server-Sent Events), /api/v1/wait; /livez, /readyz;\n"
    "see README):\n"
    "  --http HOST:PORT|off       where the API listens (default " PX_DEFAULT_HTTP ");\n"
    "                             a port alone for 127.0.0.1; off: no API. If the\n"
    "                             default port is taken, a warning and no API; an\n"
    "                             address given that cannot be used is an error\n"
    "  --http-auth FILE           HTTP Basic against user:hash lines: {SHA}, $6$,\n"
    "                             $5$, $2y$ (htpasswd -s, -5, -2, -B; openssl\n"
    "                             passwd -6); needed for a non-loopback --http\n"
    "  --http-host NAME           a Host name the API answers to, besides localhost,\n"
    "                             127.0.0.1, [::1] and its own address (repeatable);\n"
    "                             any other Host gets 403 (DNS rebinding)\n"
    "  --http-cors ORIGIN         pages of this origin (http://host:port) may call\n"
    "                             the API from a browser (default: none)\n"
    "  -h, --help                 this text\n"
    "  -V, --version              the version\n"
    "\n"
    "Transcript lines (stdout, one per event, written as they happen):\n"
    "  TIME [#N] send: '...'            a client command, relayed\n"
    "  TIME [#N] reply: b'...'          an upstream reply line, relayed\n"
    "  TIME [#N] smtpscope reply: b'...'  a reply smtpscope gave itself\n"
    "  TIME [#N] upstream send/reply:   smtpscope's own EHLO/STARTTLS upstream\n"
    "  TIME [#N] smtpscope: ...         connections, TLS, summaries, warnings\n"
    "\n"
    "Exit status: 0 after SIGINT/SIGTERM, 2 on a usage or start-up error.\n";

int px_split_hostport(const char *s, char *host, size_t hostlen, char *port, size_t portlen)
{
    const char *colon;
    size_t hlen;

    if (s[0] == '[') {
        const char *end = strchr(s, ']');
        if (end == NULL || end[1] != ':')
            return -1;
        hlen = (size_t)(end - s - 1);
        s++;
        colon = end + 1;
    } else {
        colon = strrchr(s, ':');
        if (colon == NULL || memchr(s, ':', (size_t)(colon - s)) != NULL)
            return -1;
        hlen = (size_t)(colon - s);
    }
    if (hlen == 0 || hlen >= hostlen || strlen(colon + 1) >= portlen)
        return -1;
    char *endp;
    errno = 0;
    long p = strtol(colon + 1, &endp, 10);
    if (colon[1] == '\0' || *endp != '\0' || errno != 0 || p < 0 || p > 65535)
        return -1;
    memcpy(host, s, hlen);
    host[hlen] = '\0';
    snprintf(port, portlen, "%ld", p);
    return 0;
}

/* px_leading_number - the decimal number s starts with (no sign, no
 * blank), and in *end what follows it. -1 when s does not start with a
 * digit or the number is out of range. */
static int px_leading_number(const char *s, unsigned long long *v, char **end)
{
    if (s[0] < '0' || s[0] > '9')
        return -1;
    errno = 0;
    *v = strtoull(s, end, 10);
    return errno != 0 ? -1 : 0;
}

int px_parse_duration(const char *s, uint64_t *ms)
{
    char *end;
    unsigned long long v;
    uint64_t mult = 1000;

    if (px_leading_number(s, &v, &end) != 0)
        return -1;
    if (strcmp(end, "ms") == 0)
        mult = 1;
    else if (strcmp(end, "s") == 0 || *end == '\0')
        mult = 1000;
    else if (strcmp(end, "m") == 0)
        mult = 60 * 1000;
    else if (strcmp(end, "h") == 0)
        mult = 3600 * 1000;
    else
        return -1;
    if (v == 0 || v > UINT32_MAX)
        return -1;
    *ms = v * mult;
    return 0;
}

int px_parse_size(const char *s, uint64_t *bytes)
{
    char *end;
    unsigned long long v;
    int shift = 0;

    if (px_leading_number(s, &v, &end) != 0)
        return -1;
    if (strcmp(end, "K") == 0 || strcmp(end, "k") == 0)
        shift = 10;
    else if (strcmp(end, "M") == 0 || strcmp(end, "m") == 0)
        shift = 20;
    else if (strcmp(end, "G") == 0 || strcmp(end, "g") == 0)
        shift = 30;
    else if (*end != '\0')
        return -1;
    if (v == 0 || v > (PX_KEEP_BYTES_MAX >> shift))
        return -1;
    *bytes = (uint64_t)v << shift;
    return 0;
}

static int px_bad(FILE *err, const char *opt, const char *want, const char *got)
{
    fprintf(err, "smtpscope: %s: expected %s, got '%s' (see --help)\n", opt, want, got);
    return PX_PARSE_EXIT_USAGE;
}

/* px_persona_check - how the --persona options go together (the names are
 * checked against the tables by main.c, which links them). */
static int px_persona_check(const struct px_config *cfg, FILE *err)
{
    const char *lone = cfg->persona_user != NULL       ? "--persona-user"
                       : cfg->persona_password != NULL ? "--persona-password"
                       : cfg->persona_token != NULL    ? "--persona-token"
                       : cfg->persona_scenario != NULL ? "--persona-scenario"
                                                       : NULL;
    if (cfg->persona == NULL && lone != NULL) {
        fprintf(err, "smtpscope: %s goes with --persona NAME (see --help)\n", lone);
        return -1;
    }
    if (cfg->persona == NULL)
        return 0;
    if (cfg->sink_dir == NULL && cfg->replay == NULL) {
        fprintf(err, "smtpscope: --persona answers in place of a server: it needs --sink DIR or "
                     "--replay FILE (see --help)\n");
        return -1;
    }
    if (cfg->persona_scenario != NULL && cfg->replay != NULL) {
        fprintf(err, "smtpscope: --persona-scenario is for --sink (a replay answers with its "
                     "recording); use --fault 'STAGE=persona:NAME' (see --help)\n");
        return -1;
    }
    if (cfg->client_tls == PX_CLIENT_TLS_OFF) {
        fprintf(err, "smtpscope: --persona needs STARTTLS toward the client: not with "
                     "--client-tls off (see --help)\n");
        return -1;
    }
    return 0;
}

/* px_bad_hostport - say what is wrong with a HOST:PORT. */
static int px_bad_hostport(FILE *err, const char *opt, const char *got, int upstream)
{
    const char *colon = got[0] == '[' ? strstr(got, "]:") : strrchr(got, ':');
    const char *port = colon != NULL ? colon + (got[0] == '[' ? 2 : 1) : got;
    char *end;

    errno = 0;
    long p = strtol(port, &end, 10);
    if (port[0] != '\0' && *end == '\0' && (errno != 0 || p < 0 || p > 65535))
        fprintf(err, "smtpscope: %s: port %s is out of range (0 to 65535)\n", opt, port);
    else if (upstream && port[0] != '\0' && *end == '\0' && p == 0)
        fprintf(err, "smtpscope: %s: port 0 cannot be connected to\n", opt);
    else
        fprintf(err,
                "smtpscope: %s: expected HOST:PORT%s ([v6]:PORT for IPv6), got '%s' (see "
                "--help)\n",
                opt, upstream ? "" : " or a port alone", got);
    return PX_PARSE_EXIT_USAGE;
}

/* px_http_addr - --http's value: "off", HOST:PORT, or a port alone (on
 * 127.0.0.1). -1 when it is none of them. */
static int px_http_addr(struct px_config *cfg, const char *v)
{
    if (strcmp(v, "off") == 0) {
        cfg->http_off = 1;
        return 0;
    }
    cfg->http_off = 0;
    if (v[0] != '\0' && strspn(v, "0123456789") == strlen(v)) {
        char with_host[64];
        snprintf(with_host, sizeof(with_host), "127.0.0.1:%.20s", v);
        return px_split_hostport(with_host, cfg->http_host, sizeof(cfg->http_host), cfg->http_port,
                                 sizeof(cfg->http_port));
    }
    return px_split_hostport(v, cfg->http_host, sizeof(cfg->http_host), cfg->http_port,
                             sizeof(cfg->http_port));
}

/* px_http_name_ok - a Host name for --http-host: a DNS name or an address
 * ([v6] in brackets), without a port. */
static int px_http_name_ok(const char *v)
{
    size_t n = strlen(v);
    if (n == 0 || n > 253)
        return 0;
    if (v[0] == '[')
        return n > 2 && v[n - 1] == ']' && strspn(v + 1, "0123456789abcdefABCDEF:.") == n - 2;
    return strspn(v, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789.-") == n;
}

/* px_http_origin_ok - an origin for --http-cors: http(s)://host[:port],
 * nothing after it. */
static int px_http_origin_ok(const char *v)
{
    const char *host;
    if (strncmp(v, "http://", 7) == 0)
        host = v + 7;
    else if (strncmp(v, "https://", 8) == 0)
        host = v + 8;
    else
        return 0;
    return host[0] != '\0' && strlen(v) <= 200 &&
           strspn(host, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789.-:[]") ==
               strlen(host);
}

/* ---- smtpscope's own login to the upstream, and --client-auth ------------
 * Their options, help, parsing and checks are kept together here; the
 * parser reaches them through px_all_options, px_upauth_option and
 * px_upauth_check. */

enum {
    OPT_UPAUTH_FIRST = 0x400, /* past the options above */
    OPT_UP_AUTH = OPT_UPAUTH_FIRST,
    OPT_UP_USER,
    OPT_UP_PASSWORD_FILE,
    OPT_UP_PASSWORD_ENV,
    OPT_UP_TOKEN_CMD,
    OPT_UP_TOKEN_TIMEOUT,
    OPT_CLIENT_AUTH,
};

#define PX_UP_USER_MAX 256 /* --upstream-user */

static const struct option px_upauth_options[] = {
    {"upstream-auth", required_argument, NULL, OPT_UP_AUTH},
    {"upstream-user", required_argument, NULL, OPT_UP_USER},
    {"upstream-password-file", required_argument, NULL, OPT_UP_PASSWORD_FILE},
    {"upstream-password-env", required_argument, NULL, OPT_UP_PASSWORD_ENV},
    {"upstream-token-cmd", required_argument, NULL, OPT_UP_TOKEN_CMD},
    {"upstream-token-timeout", required_argument, NULL, OPT_UP_TOKEN_TIMEOUT},
    {"client-auth", required_argument, NULL, OPT_CLIENT_AUTH},
};

static const char px_upauth_usage[] =
    "\n"
    "Logging in to the upstream (smtpscope's own AUTH, inside TLS):\n"
    "  --upstream-auth MECH[,MECH...]  log in with the first of these the upstream\n"
    "                             offers: xoauth2, oauthbearer, plain, login; or\n"
    "                             auto: XOAUTH2 > OAUTHBEARER > PLAIN > LOGIN with a\n"
    "                             token command, PLAIN > LOGIN with a password\n"
    "  --upstream-user USER       who logs in (for Gmail, the address)\n"
    "  --upstream-password-file FILE  the password (a Gmail app password) on its\n"
    "                             first line; refused unless only you may read it\n"
    "  --upstream-password-env VAR  the password in this environment variable\n"
    "  --upstream-token-cmd 'CMD'  an OAuth2 access token from /bin/sh -c CMD: its\n"
    "                             first line, or JSON with access_token and\n"
    "                             expires_in; cached until shortly before it expires,\n"
    "                             run again once when the upstream rejects a token\n"
    "  --upstream-token-timeout T  the token command's time to finish (default 30s)\n"
    "  --client-auth none|accept|passthrough\n"
    "                             the client's AUTH: none: not offered; accept: AUTH\n"
    "                             PLAIN LOGIN offered, any credentials taken here and\n"
    "                             nothing forwarded (default with --upstream-auth);\n"
    "                             passthrough: relayed (default without)\n"
    "                             Secrets are never shown unless --show-secrets.\n";

static const char *const px_mech_names[PX_MECH_COUNT] = {
    [PX_MECH_XOAUTH2] = "XOAUTH2",
    [PX_MECH_OAUTHBEARER] = "OAUTHBEARER",
    [PX_MECH_PLAIN] = "PLAIN",
    [PX_MECH_LOGIN] = "LOGIN",
};

const char *px_mech_name(enum px_up_mech m)
{
    return m < PX_MECH_COUNT ? px_mech_names[m] : "?";
}

/* px_all_options - the table above followed by this block's, for getopt. */
static const struct option *px_all_options(void)
{
    static struct option all[sizeof(px_options) / sizeof(px_options[0]) +
                             sizeof(px_upauth_options) / sizeof(px_upauth_options[0])];
    size_t n = sizeof(px_options) / sizeof(px_options[0]) - 1; /* without its end */

    if (all[0].name == NULL) {
        memcpy(all, px_options, n * sizeof(all[0]));
        memcpy(all + n, px_upauth_options, sizeof(px_upauth_options));
        /* the last entry stays zero: the end */
    }
    return all;
}

/* px_upauth_mechs - "xoauth2,plain" or "auto" into cfg. */
static int px_upauth_mechs(struct px_upauth *a, const char *v, FILE *err)
{
    const char *p = v;

    a->on = 1;
    a->nmechs = 0;
    a->auto_mech = strcmp(v, "auto") == 0;
    if (a->auto_mech)
        return 0;
    if (v[0] == '\0' || v[0] == ',' || v[strlen(v) - 1] == ',' || strstr(v, ",,") != NULL)
        return px_bad(err, "--upstream-auth", "MECH[,MECH...] or auto", v);
    while (*p != '\0') {
        size_t n = strcspn(p, ",");
        int m = 0;
        while (m < PX_MECH_COUNT &&
               !(strlen(px_mech_names[m]) == n && strncasecmp(p, px_mech_names[m], n) == 0))
            m++;
        if (m == PX_MECH_COUNT) {
            fprintf(err,
                    "smtpscope: --upstream-auth: '%.*s' is not a mechanism smtpscope logs in with "
                    "(xoauth2, oauthbearer, plain, login, or auto alone) (see --help)\n",
                    (int)n, p);
            return PX_PARSE_EXIT_USAGE;
        }
        for (int i = 0; i < a->nmechs; i++) {
            if (a->mechs[i] == (enum px_up_mech)m) {
                fprintf(err, "smtpscope: --upstream-auth: %s is named twice (see --help)\n",
                        px_mech_names[m]);
                return PX_PARSE_EXIT_USAGE;
            }
        }
        a->mechs[a->nmechs++] = (enum px_up_mech)m;
        p += n;
        if (*p == ',')
            p++;
    }
    return 0;
}

/* px_upauth_option - one option of this block; 0 or PX_PARSE_EXIT_USAGE. */
static int px_upauth_option(struct px_config *cfg, int c, const char *v, FILE *err)
{
    struct px_upauth *a = &cfg->upauth;

    switch (c) {
    case OPT_UP_AUTH:
        return px_upauth_mechs(a, v, err);
    case OPT_UP_USER:
        if (v[0] == '\0' || strlen(v) > PX_UP_USER_MAX)
            return px_bad(err, "--upstream-user", "a user name of 1 to 256 bytes", v);
        for (const char *p = v; *p != '\0'; p++)
            if ((unsigned char)*p < 0x20 || *p == 0x7f)
                return px_bad(err, "--upstream-user", "a user name without control characters", v);
        a->user = v;
        return 0;
    case OPT_UP_PASSWORD_FILE:
        a->password_file = v;
        return 0;
    case OPT_UP_PASSWORD_ENV:
        if (v[0] == '\0' || strchr(v, '=') != NULL)
            return px_bad(err, "--upstream-password-env", "the name of an environment variable", v);
        a->password_env = v;
        return 0;
    case OPT_UP_TOKEN_CMD:
        if (v[0] == '\0')
            return px_bad(err, "--upstream-token-cmd", "a command", v);
        a->token_cmd = v;
        return 0;
    case OPT_UP_TOKEN_TIMEOUT:
        if (px_parse_duration(v, &a->token_timeout_ms) != 0)
            return px_bad(err, "--upstream-token-timeout", "a duration such as 30s or 500ms", v);
        return 0;
    case OPT_CLIENT_AUTH:
        if (strcmp(v, "none") == 0)
            a->client_auth = PX_CLIENT_AUTH_NONE;
        else if (strcmp(v, "accept") == 0)
            a->client_auth = PX_CLIENT_AUTH_ACCEPT;
        else if (strcmp(v, "passthrough") == 0)
            a->client_auth = PX_CLIENT_AUTH_PASSTHROUGH;
        else
            return px_bad(err, "--client-auth", "none, accept or passthrough", v);
        a->client_auth_given = 1;
        return 0;
    default:
        fprintf(err, "smtpscope: unknown option (see --help)\n");
        return PX_PARSE_EXIT_USAGE;
    }
}

/* px_upauth_check - the options of this block together, and with the rest;
 * auto resolved. 0 or PX_PARSE_EXIT_USAGE. */
static int px_upauth_check(struct px_config *cfg, FILE *err)
{
    struct px_upauth *a = &cfg->upauth;
    int sources = (a->password_file != NULL) + (a->password_env != NULL) + (a->token_cmd != NULL);

    if (a->token_timeout_ms == 0)
        a->token_timeout_ms = PX_TOKEN_TIMEOUT_DEFAULT_MS;
    if (!a->client_auth_given)
        a->client_auth = a->on ? PX_CLIENT_AUTH_ACCEPT : PX_CLIENT_AUTH_PASSTHROUGH;
    if ((a->on || a->client_auth_given) && (cfg->sink_dir != NULL || cfg->replay != NULL)) {
        fprintf(err, "smtpscope: --upstream-auth and --client-auth are for relay mode: with "
                     "--sink or --replay there is no upstream to log in to (see --help)\n");
        return PX_PARSE_EXIT_USAGE;
    }
    if (!a->on) {
        if (a->user != NULL || sources > 0) {
            fprintf(err, "smtpscope: --upstream-user and the --upstream-password-* and "
                         "--upstream-token-cmd options need --upstream-auth MECH (see --help)\n");
            return PX_PARSE_EXIT_USAGE;
        }
        return 0;
    }
    if (a->user == NULL) {
        fprintf(err, "smtpscope: --upstream-auth needs --upstream-user USER (see --help)\n");
        return PX_PARSE_EXIT_USAGE;
    }
    if (sources != 1) {
        fprintf(err,
                "smtpscope: --upstream-auth needs the secret from exactly one of "
                "--upstream-password-file FILE, --upstream-password-env VAR and "
                "--upstream-token-cmd 'CMD' (%s) (see --help)\n",
                sources == 0 ? "none given" : "more than one given");
        return PX_PARSE_EXIT_USAGE;
    }
    if (a->client_auth == PX_CLIENT_AUTH_PASSTHROUGH) {
        fprintf(err, "smtpscope: --client-auth passthrough cannot go with --upstream-auth: "
                     "smtpscope logs in to the upstream itself, and the client's AUTH would be a "
                     "second login; use accept or none (see --help)\n");
        return PX_PARSE_EXIT_USAGE;
    }
    if (a->token_cmd != NULL && cfg->loops > 1) {
        fprintf(err, "smtpscope: --upstream-token-cmd needs one event loop (its token is kept "
                     "by the first): drop --loops (see --help)\n");
        return PX_PARSE_EXIT_USAGE;
    }
    if (a->auto_mech) {
        /* a password is never a bearer token; a token command may print either */
        a->nmechs = 0;
        for (int m = a->token_cmd != NULL ? 0 : PX_MECH_PLAIN; m < PX_MECH_COUNT; m++)
            a->mechs[a->nmechs++] = (enum px_up_mech)m;
    }
    return 0;
}

/* ---- end of the --upstream-auth block ---- */

enum px_parse_result px_config_parse(struct px_config *cfg, int argc, char **argv, FILE *out,
                                     FILE *err)
{
    int tls_given = 0, c;
    char *endp;

    memset(cfg, 0, sizeof(*cfg));
    px_split_hostport(PX_DEFAULT_LISTEN, cfg->listen_host, sizeof(cfg->listen_host),
                      cfg->listen_port, sizeof(cfg->listen_port));
    px_split_hostport(PX_DEFAULT_UPSTREAM, cfg->up_host, sizeof(cfg->up_host), cfg->up_port,
                      sizeof(cfg->up_port));
    cfg->body_lines = PX_DEFAULT_BODY;
    cfg->max_sessions = PX_DEFAULT_MAX_SESSIONS;
    cfg->loops = 1;
    cfg->explain = -1;
    cfg->color = -1;
    cfg->grace_ms = 5000;
    {
        /* for tests, which must not meet another program on the default port:
         * what --http means when it is not given ("off", or an address) */
        const char *def = getenv("SMTPSCOPE_HTTP_DEFAULT");
        const char *idle = getenv("SMTPSCOPE_HTTP_IDLE");
        if (px_http_addr(cfg, def != NULL && def[0] != '\0' ? def : PX_DEFAULT_HTTP) != 0) {
            fprintf(err,
                    "smtpscope: $SMTPSCOPE_HTTP_DEFAULT: expected HOST:PORT or off, got '%s'\n",
                    def);
            return PX_PARSE_EXIT_USAGE;
        }
        if (idle != NULL && idle[0] != '\0' && px_parse_duration(idle, &cfg->http_idle_ms) != 0) {
            fprintf(err, "smtpscope: $SMTPSCOPE_HTTP_IDLE: expected a duration, got '%s'\n", idle);
            return PX_PARSE_EXIT_USAGE;
        }
    }
    cfg->keep = MBOX_KEEP_DEFAULT;
    cfg->keep_bytes = MBOX_BYTES_DEFAULT;
    cfg->timeouts = (struct px_timeouts){
        .connect = 30 * 1000,
        .greeting = 5 * 60 * 1000,
        .command = 5 * 60 * 1000,
        .data = 3 * 60 * 1000,
        .final = 10 * 60 * 1000,
        .idle = 5 * 60 * 1000,
    };
    opterr = 0;
    optind = 1;
    int longidx = 0;
    while ((c = getopt_long(argc, argv, ":hV", px_all_options(), &longidx)) != -1) {
        if (c >= OPT_UPAUTH_FIRST) {
            if (px_upauth_option(cfg, c, optarg, err) != 0)
                return PX_PARSE_EXIT_USAGE;
            continue;
        }
        switch (c) {
        case OPT_LISTEN:
            if (optarg[0] != '\0' && strspn(optarg, "0123456789") == strlen(optarg)) {
                /* a port alone: on the loopback address */
                char with_host[64];
                snprintf(with_host, sizeof(with_host), "127.0.0.1:%.20s", optarg);
                if (px_split_hostport(with_host, cfg->listen_host, sizeof(cfg->listen_host),
                                      cfg->listen_port, sizeof(cfg->listen_port)) != 0)
                    return px_bad_hostport(err, "--listen", optarg, 0);
            } else if (px_split_hostport(optarg, cfg->listen_host, sizeof(cfg->listen_host),
                                         cfg->listen_port, sizeof(cfg->listen_port)) != 0) {
                return px_bad_hostport(err, "--listen", optarg, 0);
            }
            break;
        case OPT_UPSTREAM:
            if (px_split_hostport(optarg, cfg->up_host, sizeof(cfg->up_host), cfg->up_port,
                                  sizeof(cfg->up_port)) != 0 ||
                strcmp(cfg->up_port, "0") == 0)
                return px_bad_hostport(err, "--upstream", optarg, 1);
            break;
        case OPT_ALLOW_REMOTE:
            cfg->allow_remote = 1;
            break;
        case OPT_UPSTREAM_TLS:
            if (strcmp(optarg, "starttls") == 0)
                cfg->up_tls = PX_UP_STARTTLS;
            else if (strcmp(optarg, "implicit") == 0)
                cfg->up_tls = PX_UP_IMPLICIT;
            else
                return px_bad(err, "--upstream-tls", "starttls or implicit", optarg);
            tls_given = 1;
            break;
        case OPT_CA_FILE:
            cfg->ca_file = optarg;
            break;
        case OPT_INSECURE:
            cfg->insecure = 1;
            break;
        case OPT_CLIENT_TLS:
            if (strcmp(optarg, "offer") == 0)
                cfg->client_tls = PX_CLIENT_TLS_OFFER;
            else if (strcmp(optarg, "off") == 0)
                cfg->client_tls = PX_CLIENT_TLS_OFF;
            else if (strcmp(optarg, "require") == 0)
                cfg->client_tls = PX_CLIENT_TLS_REQUIRE;
            else
                return px_bad(err, "--client-tls", "offer, require or off", optarg);
            break;
        case OPT_CERT:
            cfg->cert_file = optarg;
            break;
        case OPT_KEY:
            cfg->key_file = optarg;
            break;
        case OPT_SHOW_SECRETS:
            cfg->show_secrets = 1;
            break;
        case OPT_BODY_LINES:
            errno = 0;
            cfg->body_lines = strtol(optarg, &endp, 10);
            if (optarg[0] == '\0' || *endp != '\0' || errno != 0 || cfg->body_lines < 0 ||
                cfg->body_lines > INT_MAX)
                return px_bad(err, "--body-lines", "a number of lines, 0 or more", optarg);
            break;
        case OPT_HELO:
            if (optarg[0] == '\0' || strlen(optarg) > 255 || strpbrk(optarg, " \r\n\t") != NULL)
                return px_bad(err, "--helo", "a host name", optarg);
            cfg->helo = optarg;
            break;
        case OPT_TRACE:
            cfg->trace = 1;
            break;
        case OPT_BARE_LF:
            if (strcmp(optarg, "normalize") == 0)
                cfg->bare_lf = PX_BARE_LF_NORMALIZE;
            else if (strcmp(optarg, "reject") == 0)
                cfg->bare_lf = PX_BARE_LF_REJECT;
            else
                return px_bad(err, "--bare-lf", "normalize or reject", optarg);
            break;
        case OPT_MAX_SESSIONS: {
            errno = 0;
            long v = strtol(optarg, &endp, 10);
            if (optarg[0] == '\0' || *endp != '\0' || errno != 0 || v < 1 || v > 1000000)
                return px_bad(err, "--max-sessions", "a number from 1 to 1000000", optarg);
            cfg->max_sessions = (unsigned)v;
            break;
        }
        case OPT_LOOPS: {
            errno = 0;
            long v = strtol(optarg, &endp, 10);
            if (optarg[0] == '\0' || *endp != '\0' || errno != 0 || v < 1 || v > 64)
                return px_bad(err, "--loops", "a number from 1 to 64", optarg);
            cfg->loops = (unsigned)v;
            break;
        }
        case OPT_JSON:
            cfg->json = optarg;
            break;
        case OPT_TDIR:
            cfg->transcript_dir = optarg;
            break;
        case OPT_KEYLOG:
            cfg->keylog = optarg;
            break;
        case OPT_PCAP:
            cfg->pcap = optarg;
            break;
        case OPT_EXPLAIN:
        case OPT_NO_EXPLAIN:
            cfg->explain = c == OPT_EXPLAIN;
            break;
        case OPT_COLOR:
            if (strcmp(optarg, "never") == 0)
                cfg->color = 0;
            else if (strcmp(optarg, "always") == 0)
                cfg->color = 1;
            else if (strcmp(optarg, "auto") == 0)
                cfg->color = -1;
            else
                return px_bad(err, "--color", "never, always or auto", optarg);
            break;
        case OPT_QUIET:
            cfg->quiet = 1;
            break;
        case OPT_FORMAT:
            if (strcmp(optarg, "smtpscope") == 0)
                cfg->format = PX_FORMAT_CONSOLE;
            else if (strcmp(optarg, "smtplib") == 0)
                cfg->format = PX_FORMAT_SMTPLIB;
            else if (strcmp(optarg, "smtplib2") == 0)
                cfg->format = PX_FORMAT_SMTPLIB2;
            else
                return px_bad(err, "--format", "smtpscope, smtplib or smtplib2", optarg);
            break;
        case OPT_GRACE:
            if (px_parse_duration(optarg, &cfg->grace_ms) != 0)
                return px_bad(err, "--grace", "a duration such as 5s", optarg);
            break;
        case OPT_SINK:
            cfg->sink_dir = optarg;
            break;
        case OPT_SINK_AUTH:
            cfg->sink_auth = optarg;
            break;
        case OPT_FAULT:
            if (cfg->nfaults == (int)(sizeof(cfg->faults) / sizeof(cfg->faults[0]))) {
                fprintf(err, "smtpscope: at most 64 --fault rules (see --help)\n");
                return PX_PARSE_EXIT_USAGE;
            }
            cfg->faults[cfg->nfaults++] = optarg;
            break;
        case OPT_RECORD:
            cfg->record = optarg;
            break;
        case OPT_REPLAY:
            cfg->replay = optarg;
            break;
        case OPT_HTTP:
            if (px_http_addr(cfg, optarg) != 0)
                return px_bad_hostport(err, "--http", optarg, 0);
            cfg->http_given = 1;
            break;
        case OPT_HTTP_HOST:
            if (!px_http_name_ok(optarg))
                return px_bad(err, "--http-host", "a host name or address, without a port", optarg);
            if (cfg->nhttp_names == (int)(sizeof(cfg->http_names) / sizeof(cfg->http_names[0]))) {
                fprintf(err, "smtpscope: at most 16 --http-host names (see --help)\n");
                return PX_PARSE_EXIT_USAGE;
            }
            cfg->http_names[cfg->nhttp_names++] = optarg;
            break;
        case OPT_HTTP_CORS:
            if (!px_http_origin_ok(optarg))
                return px_bad(err, "--http-cors", "an origin such as http://localhost:3000",
                              optarg);
            cfg->http_cors = optarg;
            break;
        case OPT_HTTP_AUTH:
            cfg->http_auth = optarg;
            break;
        case OPT_KEEP: {
            errno = 0;
            unsigned long long v = strtoull(optarg, &endp, 10);
            if (optarg[0] < '0' || optarg[0] > '9' || *endp != '\0' || errno != 0 ||
                v > PX_KEEP_MAX)
                return px_bad(err, "--keep", "a number of messages from 0 to 10000000", optarg);
            cfg->keep = v;
            break;
        }
        case OPT_KEEP_BYTES:
            if (px_parse_size(optarg, &cfg->keep_bytes) != 0)
                return px_bad(err, "--keep-bytes", "a size such as 256M, 1G or 65536 (up to 1 TiB)",
                              optarg);
            break;
        case OPT_PERSONA:
            cfg->persona = optarg;
            break;
        case OPT_PERSONA_USER:
            cfg->persona_user = optarg;
            break;
        case OPT_PERSONA_PASSWORD:
            cfg->persona_password = optarg;
            break;
        case OPT_PERSONA_TOKEN:
            cfg->persona_token = optarg;
            break;
        case OPT_PERSONA_SCENARIO:
            cfg->persona_scenario = optarg;
            break;
        case OPT_SEED: {
            errno = 0;
            unsigned long long v = strtoull(optarg, &endp, 10);
            if (optarg[0] < '0' || optarg[0] > '9' || *endp != '\0' || errno != 0)
                return px_bad(err, "--seed", "a number", optarg);
            cfg->seed = v;
            cfg->seed_given = 1;
            break;
        }
        case OPT_T_CONNECT:
        case OPT_T_GREETING:
        case OPT_T_COMMAND:
        case OPT_T_DATA:
        case OPT_T_FINAL:
        case OPT_T_IDLE: {
            uint64_t *slot[] = {&cfg->timeouts.connect, &cfg->timeouts.greeting,
                                &cfg->timeouts.command, &cfg->timeouts.data,
                                &cfg->timeouts.final,   &cfg->timeouts.idle};
            char name[64];
            snprintf(name, sizeof(name), "--%s", px_options[longidx].name);
            if (px_parse_duration(optarg, slot[c - OPT_T_CONNECT]) != 0)
                return px_bad(err, name, "a duration such as 30s, 500ms or 5m", optarg);
            break;
        }
        case 'h':
            fputs(px_usage, out);
            fputs(px_upauth_usage, out);
            fputs(px_usage_rest, out);
            return PX_PARSE_EXIT_OK;
        case 'V':
            fprintf(out, "smtpscope %s\n", PX_VERSION);
            return PX_PARSE_EXIT_OK;
        case ':':
            fprintf(err, "smtpscope: option '%s' needs a value (see --help)\n", argv[optind - 1]);
            return PX_PARSE_EXIT_USAGE;
        default:
            if (optopt != 0 && optopt < 256)
                fprintf(err, "smtpscope: unknown option '-%c' (see --help)\n", optopt);
            else
                fprintf(err, "smtpscope: unknown option '%s' (see --help)\n", argv[optind - 1]);
            return PX_PARSE_EXIT_USAGE;
        }
    }
    if (optind < argc) {
        fprintf(err, "smtpscope: unexpected argument '%s' (see --help)\n", argv[optind]);
        return PX_PARSE_EXIT_USAGE;
    }
    if ((cfg->cert_file == NULL) != (cfg->key_file == NULL)) {
        fprintf(err, "smtpscope: --cert and --key go together (see --help)\n");
        return PX_PARSE_EXIT_USAGE;
    }
    if ((cfg->sink_dir != NULL) + (cfg->replay != NULL) + (cfg->record != NULL) > 1) {
        fprintf(err, "smtpscope: --sink, --replay and --record exclude each other (see --help)\n");
        return PX_PARSE_EXIT_USAGE;
    }
    if (cfg->loops > 1 &&
        (cfg->sink_dir != NULL || cfg->replay != NULL || cfg->record != NULL || cfg->nfaults > 0)) {
        fprintf(err, "smtpscope: --loops above 1 is for relay mode: --sink, --replay, --record "
                     "and --fault need one loop (see --help)\n");
        return PX_PARSE_EXIT_USAGE;
    }
    if (px_persona_check(cfg, err) != 0)
        return PX_PARSE_EXIT_USAGE;
    if (cfg->format != PX_FORMAT_CONSOLE && (cfg->quiet || cfg->explain == 1)) {
        /* smtplib prints neither learner notes nor summaries */
        fprintf(err,
                "smtpscope: --format %s prints what smtplib prints: --quiet and --explain "
                "do not apply (see --help)\n",
                cfg->format == PX_FORMAT_SMTPLIB ? "smtplib" : "smtplib2");
        return PX_PARSE_EXIT_USAGE;
    }
    if (px_upauth_check(cfg, err) != 0)
        return PX_PARSE_EXIT_USAGE;
    if (!tls_given)
        cfg->up_tls = strcmp(cfg->up_port, "465") == 0 ? PX_UP_IMPLICIT : PX_UP_STARTTLS;
    return PX_PARSE_RUN;
}
