/*
 * tls - an mbedTLS engine over memory buffers, with no knowledge of sockets.
 *
 * The caller feeds ciphertext it read from the wire (tls_conn_feed) and takes
 * the ciphertext to be written (tls_conn_take_out). Plaintext goes in with
 * tls_conn_write and comes out of tls_conn_read. Nothing here blocks or does
 * I/O, so the whole engine can be driven by unit tests over memory.
 *
 * Errors are negative mbedTLS codes; tls_strerror() turns any of them into
 * the "-0x%04x text" form used everywhere in smtpscope.
 */
#ifndef SMTPSCOPE_TLS_H
#define SMTPSCOPE_TLS_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#define TLS_AGAIN 1 /* needs more ciphertext from the peer */

struct tls_config;
struct tls_conn;

/* One secret of a TLS session, for an NSS key-log line: label is
 * "CLIENT_RANDOM" for TLS 1.2's master secret, or a TLS 1.3 one
 * ("CLIENT_HANDSHAKE_TRAFFIC_SECRET", ..., "SERVER_TRAFFIC_SECRET_0");
 * client_random names the session. */
typedef void tls_keylog_fn(void *arg, const char *label, const unsigned char client_random[32],
                           const unsigned char *secret, size_t secret_len);

/* tls_config_client_new - verifying client config (TLS 1.2, and 1.3 where
 * the library has it; X25519 first). ca_file NULL means the system bundle. insecure skips the
 * verdict but the verification result is still computed and reported. */
int tls_config_client_new(struct tls_config **out, const char *ca_file, int insecure, char *err,
                          size_t errlen);
/* tls_config_server_new - server config with the given PEM certificate and
 * key, or with a fresh self-signed P-256 certificate when both are NULL. */
int tls_config_server_new(struct tls_config **out, const char *cert_file, const char *key_file,
                          char *err, size_t errlen);
void tls_config_set_keylog(struct tls_config *cfg, tls_keylog_fn *fn, void *arg);
int tls_config_insecure(const struct tls_config *cfg);
void tls_config_free(struct tls_config *cfg);

/* tls_conn_new - one connection. hostname (client only, required, even
 * with insecure) sets SNI and the name the certificate must carry. */
struct tls_conn *tls_conn_new(struct tls_config *cfg, const char *hostname, char *err,
                              size_t errlen);
void tls_conn_free(struct tls_conn *c);
/* tls_conn_set_keylog - hand this connection's secrets to fn as well as to
 * the config's key log (before its handshake; fn NULL: none); called on
 * the thread of the handshake, during tls_conn_handshake. */
void tls_conn_set_keylog(struct tls_conn *c, tls_keylog_fn *fn, void *arg);

/* tls_conn_feed - append ciphertext from the peer (copied). */
int tls_conn_feed(struct tls_conn *c, const uint8_t *data, size_t len);
/* tls_conn_buffered_in - ciphertext fed but not yet consumed. */
size_t tls_conn_buffered_in(const struct tls_conn *c);
/* tls_conn_handshake - 0 done, TLS_AGAIN, or a negative error. A client
 * whose peer certificate does not verify (and not insecure) gets
 * TLS_ERR_VERIFY; tls_conn_verify_text() says why. */
int tls_conn_handshake(struct tls_conn *c);
#define TLS_ERR_VERIFY (-0x2700) /* MBEDTLS_ERR_X509_CERT_VERIFY_FAILED */
#define TLS_ERR_ALLOC  (-0x7F00) /* MBEDTLS_ERR_SSL_ALLOC_FAILED */
/* tls_conn_read - >0 plaintext bytes; TLS_READ_CLOSED when the peer sent
 * close_notify; TLS_READ_AGAIN when no complete record is buffered; any
 * other negative value is an mbedTLS error. */
ssize_t tls_conn_read(struct tls_conn *c, uint8_t *buf, size_t len);
#define TLS_READ_AGAIN  (-1)
#define TLS_READ_CLOSED 0
/* tls_conn_pending - plaintext already decrypted and waiting inside mbedTLS. */
size_t tls_conn_pending(const struct tls_conn *c);
/* tls_conn_write - encrypt all of data into the output buffer. */
int tls_conn_write(struct tls_conn *c, const uint8_t *data, size_t len);
/* tls_conn_close_notify - queue a close_notify alert. */
int tls_conn_close_notify(struct tls_conn *c);
/* tls_conn_take_out - hand the pending ciphertext (malloc'd) to the caller,
 * who frees it. NULL when there is none. */
uint8_t *tls_conn_take_out(struct tls_conn *c, size_t *len);

/* What was negotiated, for the transcript. */
const char *tls_conn_version(const struct tls_conn *c);
const char *tls_conn_ciphersuite(const struct tls_conn *c);
/* tls_conn_group - the TLS 1.3 key exchange group ("x25519"), or NULL. */
const char *tls_conn_group(const struct tls_conn *c);
/* tls_conn_params - "TLSv1.2 <suite>" or "TLSv1.3 <suite> <group>". */
void tls_conn_params(const struct tls_conn *c, char *buf, size_t len);
/* tls_conn_peer_text - 'subject "...", issuer "...", valid FROM to TO' of
 * the peer certificate, the times as UTC ISO 8601 ("2026-12-01T00:00:00Z"). */
void tls_conn_peer_text(const struct tls_conn *c, char *buf, size_t len);
/* tls_conn_verify_text - "ok", or mbedtls_x509_crt_verify_info lines joined. */
void tls_conn_verify_text(const struct tls_conn *c, char *buf, size_t len);
uint32_t tls_conn_verify_flags(const struct tls_conn *c);

void tls_strerror(int err, char *buf, size_t len);

/* tls_threads_safe - may handshakes of connections sharing one config run on
 * several threads at once? Yes with MBEDTLS_THREADING_C (as Debian builds
 * it) on 2.28, which copies EC keys before each signature or verification,
 * and on 3.6, whose built-in curves have static comb tables (nothing is
 * filled in lazily) and whose PSA core is thread-safe; no on 3.0-3.5. */
int tls_threads_safe(void);

/* The local CA (ca.c): kept in dir (made on first use, key 0600), it
 * issues the client leg's certificates: one per SNI name, each also for
 * localhost, 127.0.0.1 and ::1. */
struct tls_ca;
/* tls_ca_default_dir - $XDG_DATA_HOME/smtpscope, or ~/.local/share/smtpscope;
 * NULL when neither variable is set. */
const char *tls_ca_default_dir(char *buf, size_t len);
int tls_ca_open(struct tls_ca **out, const char *dir, char *err, size_t errlen);
void tls_ca_free(struct tls_ca *ca);
const char *tls_ca_cert_path(const struct tls_ca *ca);
/* tls_ca_created - was the CA made by this tls_ca_open (not loaded)? */
int tls_ca_created(const struct tls_ca *ca);
/* tls_config_server_new_ca - a server config whose certificate the CA
 * issues for the name each client asks for (SNI). The CA must outlive it. */
int tls_config_server_new_ca(struct tls_config **out, struct tls_ca *ca, char *err, size_t errlen);
/* tls_err_peer_alert - is this error a fatal alert the peer sent?
 * tls_err_bad_mac - a record that did not decrypt: on mbedTLS 3.6 a TLS 1.3
 * client's (encrypted) alert during the handshake ends it so. */
int tls_err_peer_alert(int err);
int tls_err_bad_mac(int err);

/* Session resumption (RFC 5077 tickets, or session ids). */
struct tls_session;
struct tls_session *tls_session_new(void);
void tls_session_free(struct tls_session *s);
/* tls_conn_save_session - keep the session of a finished handshake. In
 * TLS 1.3 the session is a ticket that arrives after the handshake: each
 * one read later (tls_conn_read) is saved to s then. A tls_session may be
 * saved to and resumed from by several threads. */
int tls_conn_save_session(struct tls_conn *c, struct tls_session *s);
/* tls_conn_resume - offer a saved session (before the handshake); TLS 1.3
 * tickets this connection receives replace it. */
int tls_conn_resume(struct tls_conn *c, struct tls_session *s);
/* tls_conn_tickets - TLS 1.3 NewSessionTickets received so far. */
unsigned tls_conn_tickets(const struct tls_conn *c);
/* tls_has_tls13 - can this build negotiate TLS 1.3 (mbedTLS 3.x)? */
int tls_has_tls13(void);
/* tls_conn_resumed - did the handshake resume a session? */
int tls_conn_resumed(const struct tls_conn *c);
/* tls_config_server_tickets - issue session tickets (server config). */
int tls_config_server_tickets(struct tls_config *cfg, char *err, size_t errlen);

/* keylog - NSS key-log file for Wireshark (tls/keylog.c). */
struct tls_keylog;
int tls_keylog_open(struct tls_keylog **out, const char *path, char *err, size_t errlen);
/* tls_keylog_line - one NSS key-log line with its newline into buf (at
 * least TLS_KEYLOG_LINE_MAX bytes); its length, 0 when label or secret is
 * too long to be one. */
#define TLS_KEYLOG_LINE_MAX (31 + 1 + 64 + 1 + 2 * 64 + 1)
size_t tls_keylog_line(char *buf, const char *label, const unsigned char client_random[32],
                       const unsigned char *secret, size_t secret_len);
/* tls_keylog_write - a tls_keylog_fn: arg is the struct tls_keylog. */
void tls_keylog_write(void *arg, const char *label, const unsigned char client_random[32],
                      const unsigned char *secret, size_t secret_len);
/* tls_keylog_errors - failed writes so far, and the last errno. */
unsigned tls_keylog_errors(struct tls_keylog *kl, int *last_errno);
void tls_keylog_close(struct tls_keylog *kl);

#endif
