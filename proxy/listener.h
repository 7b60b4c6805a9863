/* listener - the listening socket: accept, then a session per client. */
#ifndef SMTPSCOPE_LISTENER_H
#define SMTPSCOPE_LISTENER_H

#include "session.h"

struct px_listener {
    uv_tcp_t tcp;
    struct proxy *px;
    struct sockaddr_storage bound; /* what it is bound to (port 0 made real) */
    char addr[80];                 /* the same as text */
};

/* px_listen - resolve host and port, and listen. */
int px_listen(struct px_listener *ls, struct proxy *px, const char *host, const char *port,
              char *err, size_t errlen);
/* px_listen_shared - listen on first's socket (a duplicate of it) from
 * another loop: both accept from the one queue. */
int px_listen_shared(struct px_listener *ls, struct proxy *px, const struct px_listener *first,
                     char *err, size_t errlen);
void px_listener_close(struct px_listener *ls);

#endif
