/* pcap - the plaintext of both legs as a pcap, --pcap (pcap.c). */
#ifndef SMTPSCOPE_PCAP_H
#define SMTPSCOPE_PCAP_H

#include "event.h"

#include <stddef.h>

int tlog_pcap_open(const char *path, char *err, size_t errlen);
void tlog_pcap_render(const struct tlog_event *ev);
void tlog_pcap_close(void);

#endif
