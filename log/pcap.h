/* pcap - the plaintext of both legs as a pcap, --pcap (pcap.c). */
#ifndef SMTPSCOPE_PCAP_H
#define SMTPSCOPE_PCAP_H

#include "event.h"

#include <stddef.h>

/* A pcap writer: of the --pcap file, or into memory. */
struct tlog_pcap;

/* tlog_pcap_open - a writer of the file at path (0600, never through a
 * symbolic link), its header written. 0, or -1 with err filled. */
int tlog_pcap_open(struct tlog_pcap **out, const char *path, char *err, size_t errlen);
/* tlog_pcap_mem - a writer into memory (tlog_pcap_take); NULL: no memory. */
struct tlog_pcap *tlog_pcap_mem(void);
/* tlog_pcap_render - the records of one event (as shown: redacted) into
 * w; w NULL is fine. Not thread-safe: one caller at a time per writer. */
void tlog_pcap_render(struct tlog_pcap *w, const struct tlog_event *ev);
/* tlog_pcap_take - a memory writer's pcap into *buf (malloc'd, the
 * caller's) and *len; w is freed. 0, or -1 (no memory). */
int tlog_pcap_take(struct tlog_pcap *w, char **buf, size_t *len);
/* tlog_pcap_close - close and free a writer; NULL is fine. */
void tlog_pcap_close(struct tlog_pcap *w);

#endif
