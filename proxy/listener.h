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

/* px_listen - resolve host and port, and listen. reuseport (--loops): with
 * SO_REUSEPORT, so that the other loops can listen on the same address and
 * the kernel spreads connections over them; the port must be free first. */
int px_listen(struct px_listener *ls, struct proxy *px, const char *host, const char *port,
              int reuseport, char *err, size_t errlen);
/* px_listen_at - listen on an address, e.g. the first loop's bound one. */
int px_listen_at(struct px_listener *ls, struct proxy *px, const struct sockaddr *sa, int reuseport,
                 char *err, size_t errlen);
void px_listener_close(struct px_listener *ls);
/* px_addr_is_loopback - 127.0.0.0/8, ::1 or ::ffff:127.0.0.0/104. */
int px_addr_is_loopback(const struct sockaddr *sa);

#endif
