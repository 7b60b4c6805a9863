/*
 * tlsmeasure - what chose smtpscope's TLS suite and group order: the AEAD
 * ciphers of TLS 1.2/1.3 sealing 16 KiB records (MB/s), and one ECDHE
 * (key pair + shared secret) per group (operations/s), with the mbedTLS
 * smtpscope is linked against. Single thread; run it on an idle core.
 *
 *   build/bench/tlsmeasure [seconds per line, default 1]
 */
#include <mbedtls/cipher.h>
#include <mbedtls/ctr_drbg.h>
#include <mbedtls/ecdh.h>
#include <mbedtls/entropy.h>
#include <mbedtls/version.h>

#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#define RECORD 16384 /* a full TLS record (RFC 8446 5.1) */

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec / 1e9;
}

static void aead(const char *name, mbedtls_cipher_type_t type, int keybits, double secs)
{
    static unsigned char in[RECORD], out[RECORD + 16], key[32], iv[12], ad[13];
    const mbedtls_cipher_info_t *info = mbedtls_cipher_info_from_type(type);
    mbedtls_cipher_context_t ctx;
    double start, t;
    size_t olen;
    long n = 0;

    mbedtls_cipher_init(&ctx);
    if (info == NULL || mbedtls_cipher_setup(&ctx, info) != 0 ||
        mbedtls_cipher_setkey(&ctx, key, keybits, MBEDTLS_ENCRYPT) != 0) {
        printf("%-22s not available\n", name);
        return;
    }
    start = now();
    do {
        for (int i = 0; i < 64; i++, n++)
            if (mbedtls_cipher_auth_encrypt_ext(&ctx, iv, sizeof(iv), ad, sizeof(ad), in, RECORD,
                                                out, sizeof(out), &olen, 16) != 0) {
                printf("%-22s failed\n", name);
                return;
            }
        t = now() - start;
    } while (t < secs);
    printf("%-22s %7.0f MB/s\n", name, n * (double)RECORD / t / 1e6);
    mbedtls_cipher_free(&ctx);
}

static void ecdhe(const char *name, mbedtls_ecp_group_id id, mbedtls_ctr_drbg_context *drbg,
                  double secs)
{
    mbedtls_ecp_group grp;
    mbedtls_ecp_point qa, qb;
    mbedtls_mpi da, db, z;
    double start, t;
    long n = 0;

    mbedtls_ecp_group_init(&grp);
    mbedtls_ecp_point_init(&qa);
    mbedtls_ecp_point_init(&qb);
    mbedtls_mpi_init(&da);
    mbedtls_mpi_init(&db);
    mbedtls_mpi_init(&z);
    if (mbedtls_ecp_group_load(&grp, id) != 0 ||
        mbedtls_ecdh_gen_public(&grp, &db, &qb, mbedtls_ctr_drbg_random, drbg) != 0) {
        printf("%-22s not available\n", name);
        goto out;
    }
    start = now();
    do {
        /* one side of a handshake: a fresh key pair, then the shared secret */
        if (mbedtls_ecdh_gen_public(&grp, &da, &qa, mbedtls_ctr_drbg_random, drbg) != 0 ||
            mbedtls_ecdh_compute_shared(&grp, &z, &qb, &da, mbedtls_ctr_drbg_random, drbg) != 0) {
            printf("%-22s failed\n", name);
            goto out;
        }
        n++;
        t = now() - start;
    } while (t < secs);
    printf("%-22s %7.0f ECDHE/s\n", name, n / t);
out:
    mbedtls_ecp_group_free(&grp);
    mbedtls_ecp_point_free(&qa);
    mbedtls_ecp_point_free(&qb);
    mbedtls_mpi_free(&da);
    mbedtls_mpi_free(&db);
    mbedtls_mpi_free(&z);
}

int main(int argc, char **argv)
{
    double secs = argc > 1 ? atof(argv[1]) : 1.0;
    mbedtls_entropy_context entropy;
    mbedtls_ctr_drbg_context drbg;

    mbedtls_entropy_init(&entropy);
    mbedtls_ctr_drbg_init(&drbg);
    if (mbedtls_ctr_drbg_seed(&drbg, mbedtls_entropy_func, &entropy, NULL, 0) != 0)
        return 1;
    printf("mbedTLS %s\n", MBEDTLS_VERSION_STRING);
    aead("CHACHA20-POLY1305", MBEDTLS_CIPHER_CHACHA20_POLY1305, 256, secs);
    aead("AES-128-GCM", MBEDTLS_CIPHER_AES_128_GCM, 128, secs);
    aead("AES-256-GCM", MBEDTLS_CIPHER_AES_256_GCM, 256, secs);
    ecdhe("x25519", MBEDTLS_ECP_DP_CURVE25519, &drbg, secs);
    ecdhe("secp256r1", MBEDTLS_ECP_DP_SECP256R1, &drbg, secs);
    ecdhe("secp384r1", MBEDTLS_ECP_DP_SECP384R1, &drbg, secs);
    mbedtls_ctr_drbg_free(&drbg);
    mbedtls_entropy_free(&entropy);
    return 0;
}
