/*
 * failwrite - an LD_PRELOAD shim for tests: mbedtls_ssl_write() fails, as a
 * TLS write can (a broken record layer, memory), when the plaintext it is
 * given starts with the bytes in $SMTPSCOPE_FAIL_WRITE. Every other call
 * goes to the real mbedTLS. Lets a test make one chosen write of one leg
 * fail, deterministically, with real peers on both sides.
 */
#include <dlfcn.h>
#include <stdlib.h>
#include <string.h>

struct mbedtls_ssl_context;

#define SHIM_ERR (-0x6C00) /* MBEDTLS_ERR_SSL_INTERNAL_ERROR */

int mbedtls_ssl_write(struct mbedtls_ssl_context *ssl, const unsigned char *buf, size_t len)
{
    static int (*real)(struct mbedtls_ssl_context *, const unsigned char *, size_t);
    const char *prefix = getenv("SMTPSCOPE_FAIL_WRITE");

    if (real == NULL)
        *(void **)&real = dlsym(RTLD_NEXT, "mbedtls_ssl_write");
    if (prefix != NULL && *prefix != '\0' && len >= strlen(prefix) &&
        memcmp(buf, prefix, strlen(prefix)) == 0)
        return SHIM_ERR;
    return real(ssl, buf, len);
}
