/*
 * certgen - the ephemeral self-signed certificate of the client leg.
 *
 * Made in memory at start-up with mbedTLS's own writers (pk, x509write) so no
 * file or openssl is needed to run smtpscope. Owns nothing after returning:
 * the certificate and key are parsed into the caller's structures.
 */
#include "tls_int.h"

#include <mbedtls/bignum.h>
#include <mbedtls/ecp.h>
#include <mbedtls/error.h>
#include <mbedtls/version.h>
#include <mbedtls/x509_crt.h>

#include <stdio.h>
#include <string.h>
#include <time.h>

#define CERTGEN_PEM_MAX 4096

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

int tls_certgen(mbedtls_x509_crt *crt, mbedtls_pk_context *key, mbedtls_ctr_drbg_context *drbg,
                char *err, size_t errlen)
{
    mbedtls_x509write_cert w;
    unsigned char pem[CERTGEN_PEM_MAX];
    unsigned char serial_bytes[16];
    char not_before[16], not_after[16];
    int rc;

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
    certgen_time(not_after, 365);
    mbedtls_x509write_crt_set_version(&w, MBEDTLS_X509_CRT_VERSION_3);
    mbedtls_x509write_crt_set_md_alg(&w, MBEDTLS_MD_SHA256);
    mbedtls_x509write_crt_set_subject_key(&w, key);
    mbedtls_x509write_crt_set_issuer_key(&w, key);
    if (rc == 0)
        rc = certgen_serial(&w, serial_bytes, sizeof(serial_bytes));
    if (rc == 0)
        rc = mbedtls_x509write_crt_set_subject_name(&w, "CN=localhost,O=smtpscope");
    if (rc == 0)
        rc = mbedtls_x509write_crt_set_issuer_name(&w, "CN=localhost,O=smtpscope");
    if (rc == 0)
        rc = mbedtls_x509write_crt_set_validity(&w, not_before, not_after);
    if (rc == 0)
        rc = mbedtls_x509write_crt_set_basic_constraints(&w, 0, -1);
    if (rc != 0) {
        certgen_err(err, errlen, "fields", rc);
        goto out;
    }
    rc = mbedtls_x509write_crt_pem(&w, pem, sizeof(pem), mbedtls_ctr_drbg_random, drbg);
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
