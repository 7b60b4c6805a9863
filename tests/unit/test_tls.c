/*
 * test_tls - the memory-buffer TLS engine, two ends pumped into each other
 * with no sockets: handshakes (whole and byte by byte), verification
 * verdicts, application data, close_notify, set-up errors, TLS 1.3 and
 * 1.2 against a 1.2-only peer, key-log secrets, tickets and resumption.
 * What needs TLS 1.3 is skipped, saying so, only with a library without it.
 */
#include "check.h"

#include "tls/tls.h"
#include "tls/tls_int.h"

#include <mbedtls/ctr_drbg.h>
#include <mbedtls/entropy.h>
#include <mbedtls/pem.h>
#include <mbedtls/pk.h>
#include <mbedtls/x509.h>
#include <mbedtls/version.h>
#include <mbedtls/x509_crt.h>

#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#define CA_BUNDLE "/etc/ssl/certs/ca-certificates.crt"

/* ---- pumping ----------------------------------------------------------- */

static int feed_errors; /* tls_conn_feed failures while pumping, checked once */

/* transfer - move all pending ciphertext of `from` into `to`; with step > 0
 * in pieces of step bytes, running to's handshake (while it is not done)
 * after each piece. Returns the bytes moved. */
static size_t transfer(struct tls_conn *from, struct tls_conn *to, int *to_rc, size_t step,
                       int *agains)
{
    size_t len;
    uint8_t *p = tls_conn_take_out(from, &len);

    if (p == NULL)
        return 0;
    for (size_t off = 0; off < len;) {
        size_t n = step > 0 && step < len - off ? step : len - off;
        if (tls_conn_feed(to, p + off, n) != 0)
            feed_errors++;
        off += n;
        if (step > 0 && *to_rc == TLS_AGAIN) {
            *to_rc = tls_conn_handshake(to);
            if (*to_rc == TLS_AGAIN)
                (*agains)++;
        }
    }
    free(p);
    return len;
}

/* handshake - run both ends until neither moves; *crc, *src get the last
 * results. Returns the number of TLS_AGAIN seen while feeding by pieces. */
static int handshake(struct tls_conn *cli, struct tls_conn *srv, size_t step, int *crc, int *src)
{
    int agains = 0;

    *crc = *src = TLS_AGAIN;
    for (int round = 0; round < 1000; round++) {
        size_t moved = 0;
        if (*crc == TLS_AGAIN)
            *crc = tls_conn_handshake(cli);
        moved += transfer(cli, srv, src, step, &agains);
        if (*src == TLS_AGAIN)
            *src = tls_conn_handshake(srv);
        moved += transfer(srv, cli, crc, step, &agains);
        if (moved == 0)
            break;
    }
    return agains;
}

/* send_recv - write data on `from`, deliver it to `to` in pieces of step
 * bytes (0: whole) and read it all, rbuf bytes per read. Returns the bytes
 * read into got (at most cap), or -1 on an error result. */
static long send_recv(struct tls_conn *from, struct tls_conn *to, const uint8_t *data, size_t len,
                      uint8_t *got, size_t cap, size_t step, size_t rbuf)
{
    size_t outlen, have = 0;
    uint8_t *ct;

    if (tls_conn_write(from, data, len) != 0)
        return -1;
    ct = tls_conn_take_out(from, &outlen);
    if (ct == NULL)
        return -1;
    for (size_t off = 0; off < outlen;) {
        size_t n = step > 0 && step < outlen - off ? step : outlen - off;
        tls_conn_feed(to, ct + off, n);
        off += n;
        for (;;) {
            size_t want = cap - have < rbuf ? cap - have : rbuf;
            ssize_t r = want > 0 ? tls_conn_read(to, got + have, want) : TLS_READ_AGAIN;
            if (r > 0) {
                have += (size_t)r;
                continue;
            }
            if (r != TLS_READ_AGAIN) {
                free(ct);
                return -1;
            }
            break;
        }
    }
    free(ct);
    return (long)have;
}

/* ---- fixtures ---------------------------------------------------------- */

#define KEYLOG_MAX 8

struct keylog_rec {
    int calls;
    char label[KEYLOG_MAX][40];
    unsigned char random[KEYLOG_MAX][32];
    unsigned char secret[KEYLOG_MAX][64];
    size_t len[KEYLOG_MAX];
};

static void keylog_cb(void *arg, const char *label, const unsigned char client_random[32],
                      const unsigned char *secret, size_t len)
{
    struct keylog_rec *k = arg;
    if (k->calls < KEYLOG_MAX) {
        snprintf(k->label[k->calls], sizeof(k->label[0]), "%s", label);
        memcpy(k->random[k->calls], client_random, 32);
        memcpy(k->secret[k->calls], secret, len < 64 ? len : 64);
        k->len[k->calls] = len;
    }
    k->calls++;
}

/* keylog_find - the index of label's line, or -1 */
static int keylog_find(const struct keylog_rec *k, const char *label)
{
    for (int i = 0; i < k->calls && i < KEYLOG_MAX; i++)
        if (strcmp(k->label[i], label) == 0)
            return i;
    return -1;
}

/* keylog_same - both ends logged the same secrets under the same labels,
 * and exactly these labels */
static void keylog_same(const struct keylog_rec *a, const struct keylog_rec *b,
                        const char *const *labels, int n)
{
    CHECKF(a->calls == n && b->calls == n, "keylog calls %d %d, want %d", a->calls, b->calls, n);
    for (int i = 0; i < n; i++) {
        int x = keylog_find(a, labels[i]), y = keylog_find(b, labels[i]);
        CHECKF(x >= 0 && y >= 0, "no %s line (%d %d)", labels[i], x, y);
        if (x < 0 || y < 0)
            continue;
        CHECKF(a->len[x] == b->len[y] && a->len[x] >= 32 && a->len[x] <= 64, "%s: %zu %zu bytes",
               labels[i], a->len[x], b->len[y]);
        CHECKF(memcmp(a->random[x], b->random[y], 32) == 0 &&
                   memcmp(a->secret[x], b->secret[y], a->len[x]) == 0,
               "%s differs between the ends", labels[i]);
        CHECKF(memcmp(a->random[x], a->random[0], 32) == 0, "%s: another client random", labels[i]);
    }
}

static const char *const keylog12[] = {"CLIENT_RANDOM"};
static const char *const keylog13[] = {"CLIENT_HANDSHAKE_TRAFFIC_SECRET",
                                       "SERVER_HANDSHAKE_TRAFFIC_SECRET", "CLIENT_TRAFFIC_SECRET_0",
                                       "SERVER_TRAFFIC_SECRET_0"};

static struct tls_config *server_config(void)
{
    struct tls_config *cfg = NULL;
    char err[300] = "";
    int rc = tls_config_server_new(&cfg, NULL, NULL, err, sizeof(err));
    CHECKF(rc == 0 && cfg != NULL, "server config: %d %s", rc, err);
    return rc == 0 ? cfg : NULL;
}

static struct tls_config *client_config(const char *ca, int insecure)
{
    struct tls_config *cfg = NULL;
    char err[300] = "";
    int rc = tls_config_client_new(&cfg, ca, insecure, err, sizeof(err));
    CHECKF(rc == 0 && cfg != NULL, "client config %s: %d %s", ca, rc, err);
    return rc == 0 ? cfg : NULL;
}

static struct tls_conn *conn(struct tls_config *cfg, const char *host)
{
    char err[300] = "";
    struct tls_conn *c = tls_conn_new(cfg, host, err, sizeof(err));
    CHECKF(c != NULL, "tls_conn_new: %s", err);
    return c;
}

static uint8_t big_out[100 * 1024], big_in[100 * 1024 + 64];

/* ---- cases ------------------------------------------------------------- */

/* (a) an insecure client: the handshake completes, data flows both ways,
 * and the verdict on the self-signed certificate is still reported */
static void test_insecure(void)
{
    struct tls_config *scfg = server_config(), *ccfg = client_config(CA_BUNDLE, 1);
    struct keylog_rec klc = {0}, kls = {0};
    struct tls_conn *cli = NULL, *srv = NULL;
    char text[600];
    int crc, src;
    long n;

    if (scfg == NULL || ccfg == NULL)
        goto out_cfg;
    CHECK(tls_config_insecure(ccfg) == 1);
    tls_config_set_keylog(ccfg, keylog_cb, &klc);
    tls_config_set_keylog(scfg, keylog_cb, &kls);
    cli = conn(ccfg, "localhost");
    srv = conn(scfg, NULL);
    if (cli == NULL || srv == NULL)
        goto out;
    handshake(cli, srv, 0, &crc, &src);
    CHECKF(crc == 0 && src == 0, "client %d server %d", crc, src);
    CHECKF(strcmp(tls_conn_version(cli), "TLSv1.2") == 0 ||
               strcmp(tls_conn_version(cli), "TLSv1.3") == 0,
           "version %s", tls_conn_version(cli));
    CHECK_STR(tls_conn_version(srv), tls_conn_version(cli));
    CHECK(tls_conn_ciphersuite(cli) != NULL && strlen(tls_conn_ciphersuite(cli)) > 0);
    CHECK_STR(tls_conn_ciphersuite(srv), tls_conn_ciphersuite(cli));
    tls_conn_peer_text(cli, text, sizeof(text));
    CHECKF(strstr(text, "CN=localhost") != NULL, "peer: %s", text);
    tls_conn_peer_text(srv, text, sizeof(text));
    CHECKF(strstr(text, "no peer certificate") != NULL, "server's peer: %s", text);

    /* not trusted, though not fatal */
    tls_conn_verify_text(cli, text, sizeof(text));
    CHECKF(text[0] != '\0' && strcmp(text, "ok") != 0, "verify text \"%s\"", text);
    CHECKF(strstr(text, "trusted") != NULL, "verify text \"%s\"", text);
    CHECK((tls_conn_verify_flags(cli) & MBEDTLS_X509_BADCERT_NOT_TRUSTED) != 0);
    /* a short buffer is cut, not overrun */
    memset(text, 'Z', sizeof(text));
    tls_conn_verify_text(cli, text, 8);
    CHECKF(strlen(text) < 8 && text[8] == 'Z', "%s", check_show(text, 9));

    /* both ends logged the same session keys */
    if (strcmp(tls_conn_version(cli), "TLSv1.2") == 0)
        keylog_same(&klc, &kls, keylog12, 1);
    else
        keylog_same(&klc, &kls, keylog13, 4);

    /* short lines both ways, exactly */
    n = send_recv(cli, srv, (const uint8_t *)"EHLO client\r\n", 13, big_in, sizeof(big_in), 0,
                  4096);
    CHECK_MEM(big_in, n < 0 ? 0 : (size_t)n, "EHLO client\r\n", 13);
    n = send_recv(srv, cli, (const uint8_t *)"250 ok\r\n", 8, big_in, sizeof(big_in), 0, 4096);
    CHECK_MEM(big_in, n < 0 ? 0 : (size_t)n, "250 ok\r\n", 8);

    /* 100 KB: many records, read in odd-sized pieces */
    for (size_t i = 0; i < sizeof(big_out); i++)
        big_out[i] = (uint8_t)(i * 31 + 7 + (i >> 10));
    n = send_recv(cli, srv, big_out, sizeof(big_out), big_in, sizeof(big_in), 0, 1000);
    CHECKF(n == (long)sizeof(big_out) && memcmp(big_in, big_out, sizeof(big_out)) == 0,
           "client to server: %ld bytes", n);
    n = send_recv(srv, cli, big_out, sizeof(big_out), big_in, sizeof(big_in), 7777, 16384);
    CHECKF(n == (long)sizeof(big_out) && memcmp(big_in, big_out, sizeof(big_out)) == 0,
           "server to client: %ld bytes", n);

    /* a record read in part leaves the rest pending inside mbedTLS */
    {
        uint8_t part[5], rest[32];
        size_t len;
        uint8_t *ct;
        CHECK(tls_conn_write(cli, (const uint8_t *)"hello world", 11) == 0);
        ct = tls_conn_take_out(cli, &len);
        CHECK(ct != NULL && len > 11);
        if (ct != NULL) {
            tls_conn_feed(srv, ct, len);
            CHECK(tls_conn_buffered_in(srv) == len);
            free(ct);
        }
        CHECK(tls_conn_read(srv, part, sizeof(part)) == 5 && memcmp(part, "hello", 5) == 0);
        CHECKF(tls_conn_pending(srv) == 6, "pending %zu", tls_conn_pending(srv));
        CHECK(tls_conn_read(srv, rest, sizeof(rest)) == 6 && memcmp(rest, " world", 6) == 0);
        CHECK(tls_conn_pending(srv) == 0 && tls_conn_buffered_in(srv) == 0);
        CHECK(tls_conn_read(srv, rest, sizeof(rest)) == TLS_READ_AGAIN);
    }
out:
    tls_conn_free(cli);
    tls_conn_free(srv);
out_cfg:
    tls_config_free(ccfg);
    tls_config_free(scfg);
}

/* (b) a verifying client refuses the self-signed certificate */
static void test_verify_fails(void)
{
    struct tls_config *scfg = server_config(), *ccfg = client_config(CA_BUNDLE, 0);
    struct tls_conn *cli = NULL, *srv = NULL;
    char text[600];
    int crc, src;

    if (scfg == NULL || ccfg == NULL)
        goto out;
    CHECK(tls_config_insecure(ccfg) == 0);
    cli = conn(ccfg, "localhost");
    srv = conn(scfg, NULL);
    if (cli == NULL || srv == NULL)
        goto out;
    handshake(cli, srv, 0, &crc, &src);
    CHECKF(crc == TLS_ERR_VERIFY, "client %d", crc);
    tls_conn_verify_text(cli, text, sizeof(text));
    CHECKF(text[0] != '\0' && strcmp(text, "ok") != 0, "verify text \"%s\"", text);
    CHECK((tls_conn_verify_flags(cli) & MBEDTLS_X509_BADCERT_NOT_TRUSTED) != 0);
    /* asking again does not turn the refusal into success */
    crc = tls_conn_handshake(cli);
    CHECKF(crc == TLS_ERR_VERIFY, "second tls_conn_handshake after TLS_ERR_VERIFY: %d", crc);
out:
    tls_conn_free(cli);
    tls_conn_free(srv);
    tls_config_free(ccfg);
    tls_config_free(scfg);
}

/* (c) ciphertext one byte at a time: WANT_READ everywhere, same outcome */
static void test_byte_by_byte(void)
{
    struct tls_config *scfg = server_config(), *ccfg = client_config(CA_BUNDLE, 1);
    struct tls_conn *cli = NULL, *srv = NULL;
    int crc, src, agains;
    long n;

    if (scfg == NULL || ccfg == NULL)
        goto out;
    cli = conn(ccfg, "localhost");
    srv = conn(scfg, NULL);
    if (cli == NULL || srv == NULL)
        goto out;
    agains = handshake(cli, srv, 1, &crc, &src);
    CHECKF(crc == 0 && src == 0, "client %d server %d", crc, src);
    CHECKF(agains > 100, "only %d TLS_AGAIN results", agains);
    CHECK(tls_conn_handshake(cli) == 0 && tls_conn_handshake(srv) == 0);

    /* a record fed by the byte: nothing until its last byte */
    {
        static const char msg[] = "MAIL FROM:<a@b>\r\n";
        uint8_t got[64];
        size_t len, have = 0;
        int early = 0;
        uint8_t *ct;
        CHECK(tls_conn_write(cli, (const uint8_t *)msg, sizeof(msg) - 1) == 0);
        ct = tls_conn_take_out(cli, &len);
        for (size_t i = 0; ct != NULL && i < len; i++) {
            ssize_t r;
            tls_conn_feed(srv, ct + i, 1);
            r = tls_conn_read(srv, got + have, sizeof(got) - have);
            if (r > 0) {
                early += i + 1 < len;
                have += (size_t)r;
            } else if (r != TLS_READ_AGAIN) {
                early += 100;
            }
        }
        free(ct);
        CHECKF(early == 0, "%d reads gave data or errors before the record was whole", early);
        CHECK_MEM(got, have, msg, sizeof(msg) - 1);
    }
    n = send_recv(srv, cli, big_out, 20000, big_in, sizeof(big_in), 1, 333);
    CHECKF(n == 20000 && memcmp(big_in, big_out, 20000) == 0, "%ld bytes", n);
out:
    tls_conn_free(cli);
    tls_conn_free(srv);
    tls_config_free(ccfg);
    tls_config_free(scfg);
}

/* (d) nothing to read; then the peer's close_notify */
static void test_read_close(void)
{
    struct tls_config *scfg = server_config(), *ccfg = client_config(CA_BUNDLE, 1);
    struct tls_conn *cli = NULL, *srv = NULL;
    uint8_t buf[256], *ct;
    size_t len;
    int crc, src;

    if (scfg == NULL || ccfg == NULL)
        goto out;
    cli = conn(ccfg, "localhost");
    srv = conn(scfg, NULL);
    if (cli == NULL || srv == NULL)
        goto out;
    handshake(cli, srv, 0, &crc, &src);
    CHECKF(crc == 0 && src == 0, "client %d server %d", crc, src);
    CHECK(tls_conn_read(srv, buf, sizeof(buf)) == TLS_READ_AGAIN);
    CHECK(tls_conn_read(cli, buf, sizeof(buf)) == TLS_READ_AGAIN);
    CHECK(tls_conn_take_out(srv, &len) == NULL && len == 0);

    /* data, then close_notify in the same flight: the data first */
    CHECK(tls_conn_write(cli, (const uint8_t *)"QUIT\r\n", 6) == 0);
    CHECK(tls_conn_close_notify(cli) == 0);
    ct = tls_conn_take_out(cli, &len);
    CHECK(ct != NULL);
    if (ct != NULL) {
        tls_conn_feed(srv, ct, len);
        free(ct);
    }
    CHECK(tls_conn_read(srv, buf, sizeof(buf)) == 6 && memcmp(buf, "QUIT\r\n", 6) == 0);
    CHECK(tls_conn_read(srv, buf, sizeof(buf)) == TLS_READ_CLOSED);

    /* and the other way, close_notify alone */
    CHECK(tls_conn_close_notify(srv) == 0);
    ct = tls_conn_take_out(srv, &len);
    CHECK(ct != NULL);
    if (ct != NULL) {
        tls_conn_feed(cli, ct, len);
        free(ct);
    }
    CHECK(tls_conn_read(cli, buf, sizeof(buf)) == TLS_READ_CLOSED);
out:
    tls_conn_free(cli);
    tls_conn_free(srv);
    tls_config_free(ccfg);
    tls_config_free(scfg);
}

/* ---- versions, tickets, resumption ------------------------------------ */

/* skip13 - say once why the TLS 1.3 cases do not run; 1 when skipping */
static int skip13(const char *what)
{
    if (tls_has_tls13())
        return 0;
    printf("unit_tls: SKIP %s: mbedTLS " MBEDTLS_VERSION_STRING " has no TLS 1.3\n", what);
    return 1;
}

/* (f) TLS 1.3 where both ends have it, TLS 1.2 when either end is 1.2-only;
 * the parameters line names the group for 1.3 only; both ends log keys */
static void test_versions(void)
{
    static const struct {
        int cli12, srv12;
        size_t step;
    } cases[] = {{0, 0, 0}, {0, 0, 1}, {1, 0, 0}, {0, 1, 0}, {0, 1, 1}, {1, 1, 0}};

    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        struct tls_config *scfg = server_config(), *ccfg = client_config(CA_BUNDLE, 1);
        struct keylog_rec klc = {0}, kls = {0};
        struct tls_conn *cli = NULL, *srv = NULL;
        int want13 = tls_has_tls13() && !cases[i].cli12 && !cases[i].srv12, crc, src;
        char params[200], want[200];
        long n;

        if (scfg == NULL || ccfg == NULL)
            goto next;
        if (cases[i].cli12)
            tls_config_tls12_only(ccfg);
        if (cases[i].srv12)
            tls_config_tls12_only(scfg);
        tls_config_set_keylog(ccfg, keylog_cb, &klc);
        tls_config_set_keylog(scfg, keylog_cb, &kls);
        cli = conn(ccfg, "localhost");
        srv = conn(scfg, NULL);
        if (cli == NULL || srv == NULL)
            goto next;
        handshake(cli, srv, cases[i].step, &crc, &src);
        CHECKF(crc == 0 && src == 0, "case %zu: client %d server %d", i, crc, src);
        CHECKF(strcmp(tls_conn_version(cli), want13 ? "TLSv1.3" : "TLSv1.2") == 0, "case %zu: %s",
               i, tls_conn_version(cli));
        CHECK_STR(tls_conn_version(srv), tls_conn_version(cli));
        CHECK_STR(tls_conn_ciphersuite(srv), tls_conn_ciphersuite(cli));
        CHECK(tls_conn_resumed(cli) == 0 && tls_conn_resumed(srv) == 0);
        tls_conn_params(cli, params, sizeof(params));
        if (want13) {
            /* ChaCha20 and X25519 are first on both ends */
            CHECK_STR(tls_conn_ciphersuite(cli), "TLS1-3-CHACHA20-POLY1305-SHA256");
            CHECKF(tls_conn_group(cli) != NULL && strcmp(tls_conn_group(cli), "x25519") == 0,
                   "case %zu: group %s", i, tls_conn_group(cli) ? tls_conn_group(cli) : "NULL");
            CHECK(tls_conn_group(srv) != NULL && strcmp(tls_conn_group(srv), "x25519") == 0);
            snprintf(want, sizeof(want), "TLSv1.3 TLS1-3-CHACHA20-POLY1305-SHA256 x25519");
            keylog_same(&klc, &kls, keylog13, 4);
        } else {
            CHECK_STR(tls_conn_ciphersuite(cli), "TLS-ECDHE-ECDSA-WITH-CHACHA20-POLY1305-SHA256");
            CHECK(tls_conn_group(cli) == NULL && tls_conn_group(srv) == NULL);
            snprintf(want, sizeof(want), "TLSv1.2 %s", tls_conn_ciphersuite(cli));
            keylog_same(&klc, &kls, keylog12, 1);
        }
        CHECK_STR(params, want);
        tls_conn_params(srv, params, sizeof(params));
        CHECK_STR(params, want);
        n = send_recv(cli, srv, (const uint8_t *)"EHLO x\r\n", 8, big_in, sizeof(big_in),
                      cases[i].step, 100);
        CHECK_MEM(big_in, n < 0 ? 0 : (size_t)n, "EHLO x\r\n", 8);
        n = send_recv(srv, cli, (const uint8_t *)"250 ok\r\n", 8, big_in, sizeof(big_in),
                      cases[i].step, 100);
        CHECK_MEM(big_in, n < 0 ? 0 : (size_t)n, "250 ok\r\n", 8);
    next:
        tls_conn_free(cli);
        tls_conn_free(srv);
        tls_config_free(ccfg);
        tls_config_free(scfg);
    }
    skip13("TLS 1.3 handshakes, groups and key-log labels");
}

/* (g) upstream resumption, as the proxy does it: a first full handshake
 * saved, the next ones resumed. In TLS 1.3 the ticket comes after the
 * handshake, in the same flight as the server's first data: it is read
 * with the data, and each resumed connection saves the fresh ticket its
 * server sends. step > 0 feeds every flight in pieces. */
static void resume_case(int tls12, size_t step)
{
    struct tls_config *scfg = server_config(), *ccfg = client_config(CA_BUNDLE, 1);
    struct tls_session *sess = tls_session_new();
    const char *want = tls12 || !tls_has_tls13() ? "TLSv1.2" : "TLSv1.3";
    char err[300];
    int crc, src;

    CHECK(sess != NULL);
    if (scfg == NULL || ccfg == NULL || sess == NULL)
        goto out;
    CHECKF(tls_config_server_tickets(scfg, err, sizeof(err)) == 0, "%s", err);
    if (tls12)
        tls_config_tls12_only(scfg);
    for (int round = 0; round < 3; round++) {
        struct tls_conn *cli = conn(ccfg, "localhost"), *srv = conn(scfg, NULL);
        long n;
        if (cli == NULL || srv == NULL) {
            tls_conn_free(cli);
            tls_conn_free(srv);
            break;
        }
        CHECK(tls_conn_resume(cli, sess) == 0);
        handshake(cli, srv, step, &crc, &src);
        CHECKF(crc == 0 && src == 0, "%s round %d: client %d server %d", want, round, crc, src);
        CHECKF(strcmp(tls_conn_version(cli), want) == 0, "round %d: %s", round,
               tls_conn_version(cli));
        CHECKF(tls_conn_resumed(cli) == (round > 0) && tls_conn_resumed(srv) == (round > 0),
               "%s step %zu round %d: resumed client %d server %d", want, step, round,
               tls_conn_resumed(cli), tls_conn_resumed(srv));
        if (round == 0)
            CHECK(tls_conn_save_session(cli, sess) == 0);
        /* the server speaks first (SMTP's 220): the ticket comes with it */
        n = send_recv(srv, cli, (const uint8_t *)"220 hi\r\n", 8, big_in, sizeof(big_in), step,
                      4096);
        CHECK_MEM(big_in, n < 0 ? 0 : (size_t)n, "220 hi\r\n", 8);
        if (strcmp(want, "TLSv1.3") == 0) {
            char params[200];
            CHECKF(tls_conn_tickets(cli) >= 1, "round %d: %u tickets", round,
                   tls_conn_tickets(cli));
            tls_conn_params(cli, params, sizeof(params));
            CHECKF(strstr(params, " x25519") != NULL, "round %d: %s", round, params);
        } else {
            CHECK(tls_conn_tickets(cli) == 0);
        }
        tls_conn_free(cli);
        tls_conn_free(srv);
    }
out:
    tls_session_free(sess);
    tls_config_free(ccfg);
    tls_config_free(scfg);
}

static void test_resume(void)
{
    resume_case(1, 0);
    resume_case(1, 1);
    resume_case(0, 0);
    resume_case(0, 3);
    skip13("TLS 1.3 tickets and resumption");
}

/* ---- configs from files ------------------------------------------------ */

static char tmpdir[64];

/* write_pair - a fresh self-signed certificate and its key as PEM files */
static int write_pair(mbedtls_ctr_drbg_context *drbg, const char *cert_path, const char *key_path)
{
    mbedtls_x509_crt crt;
    mbedtls_pk_context key;
    unsigned char pem[4096];
    char err[300] = "";
    size_t olen;
    FILE *f;
    int rc;

    mbedtls_x509_crt_init(&crt);
    mbedtls_pk_init(&key);
    rc = tls_certgen(&crt, &key, drbg, err, sizeof(err));
    CHECKF(rc == 0, "certgen: %s", err);
    if (rc == 0) {
        rc =
            mbedtls_pem_write_buffer("-----BEGIN CERTIFICATE-----\n", "-----END CERTIFICATE-----\n",
                                     crt.raw.p, crt.raw.len, pem, sizeof(pem), &olen);
        f = rc == 0 ? fopen(cert_path, "w") : NULL;
        rc = f != NULL && fputs((char *)pem, f) >= 0 && fclose(f) == 0 ? 0 : -1;
    }
    if (rc == 0) {
        rc = mbedtls_pk_write_key_pem(&key, pem, sizeof(pem));
        f = rc == 0 ? fopen(key_path, "w") : NULL;
        rc = f != NULL && fputs((char *)pem, f) >= 0 && fclose(f) == 0 ? 0 : -1;
    }
    CHECKF(rc == 0, "writing %s and %s", cert_path, key_path);
    mbedtls_x509_crt_free(&crt);
    mbedtls_pk_free(&key);
    return rc;
}

static void test_files(void)
{
    mbedtls_entropy_context entropy;
    mbedtls_ctr_drbg_context drbg;
    char cert[128], key[128], key2[128], cert2[128], junk[128], missing[128], err[400];
    struct tls_config *scfg = NULL, *ccfg = NULL, *cfg = NULL;
    struct tls_conn *cli = NULL, *srv = NULL;
    int rc, crc, src;

    snprintf(tmpdir, sizeof(tmpdir), "/tmp/smtpscope-unit-XXXXXX");
    if (mkdtemp(tmpdir) == NULL) {
        CHECKF(0, "mkdtemp");
        return;
    }
    snprintf(cert, sizeof(cert), "%s/cert.pem", tmpdir);
    snprintf(key, sizeof(key), "%s/key.pem", tmpdir);
    snprintf(cert2, sizeof(cert2), "%s/cert2.pem", tmpdir);
    snprintf(key2, sizeof(key2), "%s/key2.pem", tmpdir);
    snprintf(junk, sizeof(junk), "%s/junk.pem", tmpdir);
    snprintf(missing, sizeof(missing), "%s/no-such-key.pem", tmpdir);
    mbedtls_entropy_init(&entropy);
    mbedtls_ctr_drbg_init(&drbg);
    CHECK(mbedtls_ctr_drbg_seed(&drbg, mbedtls_entropy_func, &entropy,
                                (const unsigned char *)"unit", 4) == 0);
    if (write_pair(&drbg, cert, key) != 0 || write_pair(&drbg, cert2, key2) != 0)
        goto out;

    /* the server's own files; a client that trusts exactly that certificate */
    rc = tls_config_server_new(&scfg, cert, key, err, sizeof(err));
    CHECKF(rc == 0, "server from files: %s", err);
    rc = tls_config_client_new(&ccfg, cert, 0, err, sizeof(err));
    CHECKF(rc == 0, "client with CA file: %s", err);
    if (scfg == NULL || ccfg == NULL)
        goto out;
    cli = conn(ccfg, "localhost");
    srv = conn(scfg, NULL);
    if (cli != NULL && srv != NULL) {
        char text[300];
        handshake(cli, srv, 0, &crc, &src);
        CHECKF(crc == 0 && src == 0, "client %d server %d", crc, src);
        tls_conn_verify_text(cli, text, sizeof(text));
        CHECK_STR(text, "ok");
        CHECK(tls_conn_verify_flags(cli) == 0);
    }
    tls_conn_free(cli);
    tls_conn_free(srv);

    /* trusted, but for another name */
    cli = conn(ccfg, "mail.example.com");
    srv = conn(scfg, NULL);
    if (cli != NULL && srv != NULL) {
        char text[300];
        handshake(cli, srv, 0, &crc, &src);
        CHECKF(crc == TLS_ERR_VERIFY, "client %d", crc);
        CHECK((tls_conn_verify_flags(cli) & MBEDTLS_X509_BADCERT_CN_MISMATCH) != 0);
        CHECK((tls_conn_verify_flags(cli) & MBEDTLS_X509_BADCERT_NOT_TRUSTED) == 0);
        tls_conn_verify_text(cli, text, sizeof(text));
        CHECKF(strstr(text, "CN") != NULL, "verify text \"%s\"", text);
    }
    tls_conn_free(cli);
    tls_conn_free(srv);
    cli = srv = NULL;

    /* a key that is not the certificate's */
    cfg = NULL;
    rc = tls_config_server_new(&cfg, cert, key2, err, sizeof(err));
    CHECKF(rc != 0 && cfg == NULL && strstr(err, "do not match") != NULL, "rc %d: %s", rc, err);
    tls_config_free(cfg);
    /* a key file that is not there */
    cfg = NULL;
    rc = tls_config_server_new(&cfg, cert, missing, err, sizeof(err));
    CHECKF(rc != 0 && cfg == NULL && strstr(err, missing) != NULL, "rc %d: %s", rc, err);
    tls_config_free(cfg);
    /* a CA file that holds no certificate */
    {
        FILE *f = fopen(junk, "w");
        if (f != NULL) {
            fputs("this is not a certificate\n", f);
            fclose(f);
        }
        cfg = NULL;
        rc = tls_config_client_new(&cfg, junk, 0, err, sizeof(err));
        CHECKF(rc != 0 && cfg == NULL && strstr(err, junk) != NULL, "rc %d: %s", rc, err);
        tls_config_free(cfg);
        cfg = NULL;
        rc = tls_config_server_new(&cfg, junk, key, err, sizeof(err));
        CHECKF(rc != 0 && cfg == NULL && strstr(err, junk) != NULL, "rc %d: %s", rc, err);
        tls_config_free(cfg);
    }
out:
    tls_config_free(scfg);
    tls_config_free(ccfg);
    mbedtls_ctr_drbg_free(&drbg);
    mbedtls_entropy_free(&entropy);
    unlink(cert);
    unlink(key);
    unlink(cert2);
    unlink(key2);
    unlink(junk);
    rmdir(tmpdir);
}

/* (e) set-up errors name the file */
static void test_errors(void)
{
    static const char *const nopath = "/nonexistent/smtpscope-unit/cert.pem";
    static const char *const nokey = "/nonexistent/smtpscope-unit/key.pem";
    struct tls_config *cfg = NULL;
    char err[400] = "";
    int rc;

    rc = tls_config_server_new(&cfg, nopath, nokey, err, sizeof(err));
    CHECKF(rc < 0 && cfg == NULL, "rc %d", rc);
    CHECKF(strstr(err, nopath) != NULL && strstr(err, "cannot load") != NULL, "err \"%s\"", err);

    err[0] = '\0';
    rc = tls_config_client_new(&cfg, "/nonexistent/smtpscope-unit/ca.pem", 0, err, sizeof(err));
    CHECKF(rc < 0 && cfg == NULL, "rc %d", rc);
    CHECKF(strstr(err, "/nonexistent/smtpscope-unit/ca.pem") != NULL, "err \"%s\"", err);

    /* a short error buffer is cut, not overrun */
    {
        char small[17];
        memset(small, 'Z', sizeof(small));
        rc = tls_config_client_new(&cfg, "/nonexistent/x", 1, small, 16);
        CHECK(rc < 0 && cfg == NULL && small[16] == 'Z' && memchr(small, '\0', 16) != NULL);
    }

    /* a client connection without the server's name: refused, never a
     * certificate valid for any name (CVE-2025-27809) */
    {
        struct tls_config *ccfg = client_config(CA_BUNDLE, 1);
        if (ccfg != NULL) {
            err[0] = '\0';
            CHECK(tls_conn_new(ccfg, NULL, err, sizeof(err)) == NULL);
            CHECKF(strstr(err, "needs the server's name") != NULL, "err \"%s\"", err);
            CHECK(tls_conn_new(ccfg, "", err, sizeof(err)) == NULL);
            tls_config_free(ccfg);
        }
    }

    char text[200];
    tls_strerror(TLS_ERR_VERIFY, text, sizeof(text));
    CHECKF(strncmp(text, "-0x2700 ", 8) == 0, "\"%s\"", text);
}

/* (l) the local CA: made in a new directory (key 0600, directory 0700),
 * loaded again unchanged; a client trusting only it verifies the
 * certificate issued for the name it asks (SNI), for localhost when it
 * asks for none, and a client that does not trust it fails. */
static void ca_handshake(struct tls_config *scfg, const char *ca_pem, const char *host, int want)
{
    struct tls_config *ccfg = client_config(ca_pem, 0);
    struct tls_conn *cli = ccfg != NULL ? conn(ccfg, host) : NULL;
    struct tls_conn *srv = conn(scfg, NULL);
    int crc = -1, src = -1;

    if (cli != NULL && srv != NULL)
        handshake(cli, srv, 0, &crc, &src);
    CHECKF(crc == want, "CA %s, host %s: client %d, want %d", ca_pem, host, crc, want);
    tls_conn_free(cli);
    tls_conn_free(srv);
    tls_config_free(ccfg);
}

static void test_local_ca(void)
{
    char dir[] = "/tmp/unit_tls_ca.XXXXXX", sub[300], pem[400], err[700] = "";
    struct tls_ca *ca = NULL, *again = NULL;
    struct tls_config *scfg = NULL;
    struct stat st;

    CHECK(mkdtemp(dir) != NULL);
    snprintf(sub, sizeof(sub), "%s/a/smtpscope", dir);
    CHECKF(tls_ca_open(&ca, sub, err, sizeof(err)) == 0, "open: %s", err);
    if (ca == NULL)
        return;
    CHECK(tls_ca_created(ca));
    snprintf(pem, sizeof(pem), "%s/ca.pem", sub);
    CHECK(strcmp(tls_ca_cert_path(ca), pem) == 0);
    CHECK(stat(sub, &st) == 0 && (st.st_mode & 0777) == 0700);
    snprintf(err, sizeof(err), "%s/ca.key", sub);
    CHECK(stat(err, &st) == 0 && (st.st_mode & 0777) == 0600);
    CHECKF(tls_ca_open(&again, sub, err, sizeof(err)) == 0 && !tls_ca_created(again), "reopen: %s",
           err);
    tls_ca_free(again);

    CHECKF(tls_config_server_new_ca(&scfg, ca, err, sizeof(err)) == 0, "server: %s", err);
    if (scfg != NULL) {
        ca_handshake(scfg, pem, "localhost", 0);
        ca_handshake(scfg, pem, "mail.example.test", 0);            /* issued for this SNI */
        ca_handshake(scfg, pem, "MAIL.example.test", 0);            /* names are case-blind */
        ca_handshake(scfg, CA_BUNDLE, "localhost", TLS_ERR_VERIFY); /* not trusted */
    }
    tls_config_free(scfg);
    tls_ca_free(ca);
    snprintf(err, sizeof(err), "rm -rf %s", dir);
    CHECK(system(err) == 0);
}

int main(void)
{
    alarm(120); /* a hang in the code under test is a failure, not a stall */
    test_insecure();
    test_verify_fails();
    test_byte_by_byte();
    test_read_close();
    test_versions();
    test_resume();
    test_files();
    test_errors();
    test_local_ca();
    CHECKF(feed_errors == 0, "%d tls_conn_feed calls failed", feed_errors);
    return check_done("unit_tls");
}
