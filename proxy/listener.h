/* listener - the listening socket: accept, then a session per client. */
#ifndef SMTPSCOPE_LISTENER_H
#define SMTPSCOPE_LISTENER_H

#include "session.h"

struct px_listener {
    uv_tcp_t tcp;
    struct proxy *px;
    char addr[80]; /* what it is bound to, port included */
};

/* px_listen - bind and listen on host:port (port 0: any free port). */
int px_listen(struct px_listener *ls, struct proxy *px, const char *host, const char *port,
              char *err, size_t errlen);
void px_listener_close(struct px_listener *ls);

#endif
