/*
 * collect - a consumer of the transcript (tlog_add_consumer) that puts
 * together each message a client sends, in relay, sink and replay modes
 * alike, and keeps it in a store (store.h): its bytes as the client meant
 * them (dot-stuffing and the end of data removed; BDAT octets as they
 * are), the envelope, the session's client address, TLS and AUTH user,
 * the warnings said meanwhile, and the verdict or why there was none.
 * No MIME here: the store's readers parse.
 */
#ifndef SMTPSCOPE_MBOX_COLLECT_H
#define SMTPSCOPE_MBOX_COLLECT_H

#include <stddef.h>

struct mbox;
struct sockaddr;
struct mbox_collect;

/* mbox_collect_open - start collecting into m (before sessions run). The
 * store stays the caller's; it must outlive the collector. 0, or -1 with
 * err filled. */
int mbox_collect_open(struct mbox_collect **out, struct mbox *m, char *err, size_t errlen);
/* mbox_collect_close - stop (the transcript's consumer goes) and free what
 * unfinished sessions held. */
void mbox_collect_close(struct mbox_collect *c);

/* mbox_collect_addr - a peer's address as the mailbox shows it (a
 * message's "Client"): "127.0.0.1:5000" or "[::1]:5000"; malloc'd, NULL
 * for another family or without memory. */
char *mbox_collect_addr(const struct sockaddr *sa);

#endif
