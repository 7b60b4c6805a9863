/*
 * storekeep - what adding a message costs the mailbox store once it is
 * full (--keep N reached: each add drops the oldest), against filling it.
 *
 *   build/bench/storekeep KEEP [MORE]   (MORE: adds timed when full,
 *                                        default 2 * KEEP, at least 20000)
 *
 * Prints µs per add while filling and when full. The store alone: no
 * relay, no MIME (the messages are never looked at).
 */
#include "../mailbox/store.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static double now_s(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

int main(int argc, char **argv)
{
    static const char msg[] = "Subject: x\r\n\r\nbody\r\n";
    size_t keep = argc > 1 ? strtoul(argv[1], NULL, 10) : 0;
    size_t more = argc > 2 ? strtoul(argv[2], NULL, 10) : 0;
    struct mbox *m;

    if (more == 0) /* enough adds to move the array back to its start twice */
        more = keep < 10000 ? 20000 : 2 * keep;
    if (keep == 0) {
        fprintf(stderr, "usage: storekeep KEEP [MORE]\n");
        return 2;
    }
    if (mbox_new(&m, keep, 1ull << 40) != 0)
        return 1;
    double t0 = now_s(), fill = 0;
    for (size_t i = 0; i < keep + more; i++) {
        struct mbox_facts f;
        memset(&f, 0, sizeof(f));
        if (i == keep) {
            fill = now_s() - t0;
            t0 = now_s();
        }
        if (mbox_add(m, (const uint8_t *)msg, sizeof(msg) - 1, &f, 1, NULL) != 0) {
            fprintf(stderr, "storekeep: add %zu failed\n", i);
            return 1;
        }
    }
    double full = now_s() - t0;
    printf("keep %zu: filling %.2f us/add, full %.2f us/add (%zu adds)\n", keep,
           fill / (double)keep * 1e6, full / (double)more * 1e6, more);
    mbox_free(m);
    return 0;
}
