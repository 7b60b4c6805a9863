/*
 * certgen - certificates made with mbedTLS's own writers (pk, x509write), so
 * no file or openssl is needed: the ephemeral self-signed one of the client
 * leg, and the local CA's and those it issues (ca.c). Owns nothing after
 * returning: the certificate and key are parsed into the caller's
 * structures (and the PEM written to the caller's buffer, if asked).
 */
#include "tls_int.h"

#include <mbedtls/asn1write.h>
#include <mbedtls/bignum.h>
#include <mbedtls/oid.h>
#include <mbedtls/ecp.h>
#include <mbedtls/error.h>
#include <mbedtls/version.h>
#include <mbedtls/x509_crt.h>

#include <stdio.h>
#include <string.h>
#include <time.h>

#define CERTGEN_PEM_MAX 4096
#define CERTGEN_SAN_MAX 1024

static void certgen_err(char *err, size_t errlen, const char *what, int rc)
{
    char text[160];
    mbedtls_strerror(rc, text, sizeof(text));
    snprintf(err, errlen, "self-signed certificate: %s: -0x%04x %s", what, (unsigned)-rc, text);
}

/* certgen_time - X.509 validity string "YYYYMMDDhhmmss" for now + days. */
static void certgen_time(char out[16], int days)
{
    time_t t = time(NULL) + (time_t)days * 86400;
    struct tm tm;
    gmtime_r(&t, &tm);
    strftime(out, 16, "%Y%m%d%H%M%S", &tm);
}

/* certgen_serial - set the serial number from its big-endian bytes: 3.4
 * takes them as they are and deprecates the bignum setter 2.28 has. */
static int certgen_serial(mbedtls_x509write_cert *w, unsigned char *bytes, size_t len)
{
#if MBEDTLS_VERSION_NUMBER >= 0x03040000
    return mbedtls_x509write_crt_set_serial_raw(w, bytes, len);
#else
    mbedtls_mpi serial;
    int rc;

    mbedtls_mpi_init(&serial);
    rc = mbedtls_mpi_read_binary(&serial, bytes, len);
    if (rc == 0)
        rc = mbedtls_x509write_crt_set_serial(w, &serial);
    mbedtls_mpi_free(&serial);
    return rc;
#endif
}

/* certgen_san - the subjectAltName extension (RFC 5280 4.2.1.6): dNSName
 * [2] and iPAddress [7] entries, DER written backwards into buf. Returns the
 * start of the DER in buf and its length, or NULL if it does not fit. */
static unsigned char *certgen_san(const struct tls_certspec *spec, unsigned char *buf, size_t cap,
                                  size_t *len)
{
    unsigned char *p = buf + cap;
    size_t total = 0;
    int n;

    for (size_t i = spec->nips; i-- > 0;) {
        size_t alen = spec->ips[i].len;
        if ((n = mbedtls_asn1_write_raw_buffer(&p, buf, spec->ips[i].addr, alen)) < 0)
            return NULL;
        total += (size_t)n;
        if ((n = mbedtls_asn1_write_len(&p, buf, alen)) < 0 ||
            (total += (size_t)n,
             n = mbedtls_asn1_write_tag(&p, buf, MBEDTLS_ASN1_CONTEXT_SPECIFIC | 7)) < 0)
            return NULL;
        total += (size_t)n;
    }
    for (size_t i = spec->ndns; i-- > 0;) {
        size_t dlen = strlen(spec->dns[i]);
        if ((n = mbedtls_asn1_write_raw_buffer(&p, buf, (const unsigned char *)spec->dns[i],
                                               dlen)) < 0)
            return NULL;
        total += (size_t)n;
        if ((n = mbedtls_asn1_write_len(&p, buf, dlen)) < 0 ||
            (total += (size_t)n,
             n = mbedtls_asn1_write_tag(&p, buf, MBEDTLS_ASN1_CONTEXT_SPECIFIC | 2)) < 0)
            return NULL;
        total += (size_t)n;
    }
    if ((n = mbedtls_asn1_write_len(&p, buf, total)) < 0)
        return NULL;
    total += (size_t)n;
    if ((n = mbedtls_asn1_write_tag(&p, buf, MBEDTLS_ASN1_CONSTRUCTED | MBEDTLS_ASN1_SEQUENCE)) < 0)
        return NULL;
    total += (size_t)n;
    *len = total;
    return p;
}

int tls_certgen_issue(const struct tls_certspec *spec, mbedtls_pk_context *issuer_key,
                      const mbedtls_x509_crt *issuer_crt, mbedtls_x509_crt *crt,
                      mbedtls_pk_context *key, unsigned char *pem, size_t pem_cap,
                      mbedtls_ctr_drbg_context *drbg, char *err, size_t errlen)
{
    mbedtls_x509write_cert w;
    unsigned char own_pem[CERTGEN_PEM_MAX];
    unsigned char serial_bytes[16], san[CERTGEN_SAN_MAX];
    char not_before[16], not_after[16], issuer_name[512];
    int rc;

    if (pem == NULL) {
        pem = own_pem;
        pem_cap = sizeof(own_pem);
    }
    mbedtls_x509write_crt_init(&w);

    rc = mbedtls_pk_setup(key, mbedtls_pk_info_from_type(MBEDTLS_PK_ECKEY));
    if (rc == 0)
        rc = mbedtls_ecp_gen_key(MBEDTLS_ECP_DP_SECP256R1, mbedtls_pk_ec(*key),
                                 mbedtls_ctr_drbg_random, drbg);
    if (rc != 0) {
        certgen_err(err, errlen, "key", rc);
        goto out;
    }
    rc = mbedtls_ctr_drbg_random(drbg, serial_bytes, sizeof(serial_bytes));
    serial_bytes[0] &= 0x7f; /* a positive serial */
    serial_bytes[0] |= 0x01; /* nonzero first byte: the raw bytes are DER as they are */
    certgen_time(not_before, -1);
    certgen_time(not_after, spec->days);
    if (issuer_crt != NULL &&
        mbedtls_x509_dn_gets(issuer_name, sizeof(issuer_name), &issuer_crt->subject) < 0)
        rc = MBEDTLS_ERR_X509_BAD_INPUT_DATA;
    mbedtls_x509write_crt_set_version(&w, MBEDTLS_X509_CRT_VERSION_3);
    mbedtls_x509write_crt_set_md_alg(&w, MBEDTLS_MD_SHA256);
    mbedtls_x509write_crt_set_subject_key(&w, key);
    mbedtls_x509write_crt_set_issuer_key(&w, issuer_key != NULL ? issuer_key : key);
    if (rc == 0)
        rc = certgen_serial(&w, serial_bytes, sizeof(serial_bytes));
    if (rc == 0)
        rc = mbedtls_x509write_crt_set_subject_name(&w, spec->subject);
    if (rc == 0)
        rc = mbedtls_x509write_crt_set_issuer_name(&w, issuer_crt != NULL ? issuer_name
                                                                          : spec->subject);
    if (rc == 0)
        rc = mbedtls_x509write_crt_set_validity(&w, not_before, not_after);
    if (rc == 0)
        rc = mbedtls_x509write_crt_set_basic_constraints(&w, spec->is_ca, spec->is_ca ? 0 : -1);
    /* what strict verifiers (Python 3.13's VERIFY_X509_STRICT) ask of a CA
     * and of a certificate it issues: key usage, and both key identifiers */
    if (rc == 0 && (spec->is_ca || issuer_crt != NULL))
        rc = mbedtls_x509write_crt_set_key_usage(
            &w, spec->is_ca ? MBEDTLS_X509_KU_KEY_CERT_SIGN | MBEDTLS_X509_KU_CRL_SIGN
                            : MBEDTLS_X509_KU_DIGITAL_SIGNATURE);
    if (rc == 0 && (spec->is_ca || issuer_crt != NULL))
        rc = mbedtls_x509write_crt_set_subject_key_identifier(&w);
    if (rc == 0 && issuer_crt != NULL)
        rc = mbedtls_x509write_crt_set_authority_key_identifier(&w);
    if (rc == 0 && (spec->ndns > 0 || spec->nips > 0)) {
        size_t san_len;
        unsigned char *der = certgen_san(spec, san, sizeof(san), &san_len);
        rc = der == NULL ? MBEDTLS_ERR_ASN1_BUF_TOO_SMALL
                         : mbedtls_x509write_crt_set_extension(
                               &w, MBEDTLS_OID_SUBJECT_ALT_NAME,
                               MBEDTLS_OID_SIZE(MBEDTLS_OID_SUBJECT_ALT_NAME), 0, der, san_len);
    }
    if (rc != 0) {
        certgen_err(err, errlen, "fields", rc);
        goto out;
    }
    rc = mbedtls_x509write_crt_pem(&w, pem, pem_cap, mbedtls_ctr_drbg_random, drbg);
    if (rc != 0) {
        certgen_err(err, errlen, "signing", rc);
        goto out;
    }
    rc = mbedtls_x509_crt_parse(crt, pem, strlen((char *)pem) + 1);
    if (rc != 0)
        certgen_err(err, errlen, "parsing", rc);
out:
    mbedtls_x509write_crt_free(&w);
    return rc;
}

int tls_certgen(mbedtls_x509_crt *crt, mbedtls_pk_context *key, mbedtls_ctr_drbg_context *drbg,
                char *err, size_t errlen)
{
    static const struct tls_certspec self = {.subject = "CN=localhost,O=smtpscope", .days = 365};
    return tls_certgen_issue(&self, NULL, NULL, crt, key, NULL, 0, drbg, err, errlen);
}
