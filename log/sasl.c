/*
 * sasl - AUTH payloads (see sasl.h), decoded with mbedTLS's base64.
 */
#include "sasl.h"

#include <mbedtls/base64.h>
#include <string.h>

int sasl_b64_decode(const uint8_t *in, size_t len, uint8_t *out, size_t cap, size_t *n)
{
    *n = 0;
    while (len > 0 && (in[len - 1] == '\r' || in[len - 1] == '\n'))
        len--;
    if (len == 1 && in[0] == '=')
        len = 0;
    if (cap == 0 || mbedtls_base64_decode(out, cap - 1, n, in, len) != 0) {
        *n = 0;
        return -1;
    }
    out[*n] = '\0';
    return 0;
}

int sasl_plain_split(const uint8_t *dec, size_t n, const char **authcid, const char **passwd)
{
    const uint8_t *nul1 = memchr(dec, 0, n);
    const uint8_t *nul2 = nul1 != NULL ? memchr(nul1 + 1, 0, n - (size_t)(nul1 + 1 - dec)) : NULL;

    if (nul2 == NULL)
        return -1;
    *authcid = (const char *)nul1 + 1;
    *passwd = (const char *)nul2 + 1;
    return 0;
}
