/* tls_int - what tls.c and certgen.c share; not for other layers. */
#ifndef SMTPSCOPE_TLS_INT_H
#define SMTPSCOPE_TLS_INT_H

#include <mbedtls/ctr_drbg.h>
#include <mbedtls/pk.h>
#include <mbedtls/x509_crt.h>

/* tls_certgen - a fresh P-256 key and a self-signed certificate for it
 * (CN=localhost, valid from yesterday for a year), parsed into crt/key. */
int tls_certgen(mbedtls_x509_crt *crt, mbedtls_pk_context *key, mbedtls_ctr_drbg_context *drbg,
                char *err, size_t errlen);

#endif
