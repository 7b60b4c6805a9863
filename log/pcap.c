/*
 * pcap - the plaintext SMTP of both legs as a classic pcap (LINKTYPE_ETHERNET),
 * so that Wireshark's SMTP dissector shows the decrypted conversation with no
 * keys at all.
 *
 * Each leg is one synthetic TCP stream with the real addresses and ports:
 * a three-way handshake when the leg connects, the bytes in order with
 * correct sequence and acknowledgement numbers, and FINs when the session
 * ends. The STARTTLS command and its 220 are left out of the stream: Wireshark
 * would switch to TLS dissection after them, and what follows is plaintext.
 *
 * A writer (struct tlog_pcap) owns its output and one small state per live
 * leg: the --pcap file, whose writer the transcript renders every event
 * into under its lock, or a buffer in memory (tlog_pcap_mem), into which
 * the session registry renders one session's kept events when its pcap is
 * asked for. Writers share nothing. Fails by returning -1 (NULL) at open
 * and by dropping records (never the relay) afterwards.
 */
#include "pcap.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define PCAP_SNAPLEN  262144
#define PCAP_SEGMENT  16384 /* payload bytes per synthetic packet */
#define PCAP_ETHERNET 1

struct pcap_end {
    struct sockaddr_storage addr;
    uint32_t seq;
};

struct pcap_stream {
    uint64_t session; /* 0: free */
    int leg;
    struct pcap_end c, s; /* the connecting side and the accepting side */
};

struct tlog_pcap {
    FILE *out;
    int flush; /* a file: each event's records go out at once */
    char *mem; /* tlog_pcap_mem: what out wrote (open_memstream) */
    size_t mem_len;
    struct pcap_stream *streams;
    size_t nstreams;
    uint8_t frame[14 + 40 + 20 + PCAP_SEGMENT]; /* the packet being made */
};

static void put16(uint8_t *p, uint16_t v)
{
    p[0] = (uint8_t)(v >> 8);
    p[1] = (uint8_t)v;
}

static void put32(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)(v >> 24);
    p[1] = (uint8_t)(v >> 16);
    p[2] = (uint8_t)(v >> 8);
    p[3] = (uint8_t)v;
}

static uint32_t sum16(uint32_t sum, const uint8_t *p, size_t n)
{
    for (size_t i = 0; i + 1 < n; i += 2)
        sum += (uint32_t)(p[i] << 8 | p[i + 1]);
    if (n & 1)
        sum += (uint32_t)(p[n - 1] << 8);
    return sum;
}

static uint16_t fold(uint32_t sum)
{
    while (sum >> 16)
        sum = (sum & 0xffff) + (sum >> 16);
    return (uint16_t)~sum;
}

/* pcap_start - a writer over out, the file's header written. */
static struct tlog_pcap *pcap_start(struct tlog_pcap *p)
{
    uint8_t hdr[24];

    /* little-endian classic pcap header, microsecond timestamps */
    const uint32_t magic = 0xa1b2c3d4, snap = PCAP_SNAPLEN, link = PCAP_ETHERNET;
    memset(hdr, 0, sizeof(hdr));
    memcpy(hdr, &magic, 4);
    hdr[4] = 2;
    hdr[6] = 4;
    memcpy(hdr + 16, &snap, 4);
    memcpy(hdr + 20, &link, 4);
    fwrite(hdr, 1, sizeof(hdr), p->out);
    if (p->flush)
        fflush(p->out);
    return p;
}

int tlog_pcap_open(struct tlog_pcap **out, const char *path, char *err, size_t errlen)
{
    struct tlog_pcap *p = calloc(1, sizeof(*p));
    int fd =
        p != NULL ? open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0600) : -1;

    if (fd < 0 || (p->out = fdopen(fd, "wb")) == NULL) {
        snprintf(err, errlen, "cannot open --pcap file %s: %s", path,
                 p == NULL ? "out of memory" : strerror(errno));
        if (fd >= 0)
            close(fd);
        free(p);
        return -1;
    }
    p->flush = 1;
    *out = pcap_start(p);
    return 0;
}

struct tlog_pcap *tlog_pcap_mem(void)
{
    struct tlog_pcap *p = calloc(1, sizeof(*p));

    if (p == NULL)
        return NULL;
    if ((p->out = open_memstream(&p->mem, &p->mem_len)) == NULL) {
        free(p);
        return NULL;
    }
    return pcap_start(p);
}

int tlog_pcap_take(struct tlog_pcap *p, char **buf, size_t *len)
{
    int failed = ferror(p->out);

    if (fclose(p->out) != 0)
        failed = 1;
    p->out = NULL;
    if (!failed) { /* the buffer is the caller's now */
        *buf = p->mem;
        *len = p->mem_len;
        p->mem = NULL;
    }
    tlog_pcap_close(p);
    return failed ? -1 : 0;
}

void tlog_pcap_close(struct tlog_pcap *p)
{
    if (p == NULL)
        return;
    if (p->out != NULL)
        fclose(p->out);
    free(p->mem);
    free(p->streams);
    free(p);
}

static struct pcap_stream *pcap_find(struct tlog_pcap *w, uint64_t session, int leg, int create)
{
    struct pcap_stream *freeslot = NULL;
    for (size_t i = 0; i < w->nstreams; i++) {
        if (w->streams[i].session == session && w->streams[i].leg == leg)
            return &w->streams[i];
        if (w->streams[i].session == 0 && freeslot == NULL)
            freeslot = &w->streams[i];
    }
    if (!create)
        return NULL;
    if (freeslot == NULL) {
        size_t cap = w->nstreams ? w->nstreams * 2 : 64;
        struct pcap_stream *p = realloc(w->streams, cap * sizeof(*p));
        if (p == NULL)
            return NULL;
        memset(p + w->nstreams, 0, (cap - w->nstreams) * sizeof(*p));
        freeslot = p + w->nstreams;
        w->streams = p;
        w->nstreams = cap;
    }
    memset(freeslot, 0, sizeof(*freeslot));
    freeslot->session = session;
    freeslot->leg = leg;
    return freeslot;
}

static uint16_t port_of(const struct sockaddr_storage *a)
{
    return a->ss_family == AF_INET6 ? ntohs(((const struct sockaddr_in6 *)a)->sin6_port)
                                    : ntohs(((const struct sockaddr_in *)a)->sin_port);
}

/* pcap_packet - one Ethernet/IP/TCP frame from src to dst. */
static void pcap_packet(struct tlog_pcap *w, uint64_t time_us, struct pcap_end *src,
                        struct pcap_end *dst, uint8_t flags, const uint8_t *payload, size_t n)
{
    uint8_t *frame = w->frame;
    int v6 = src->addr.ss_family == AF_INET6;
    size_t iplen = v6 ? 40 : 20, o = 0;
    uint8_t *ip, *tcp;
    uint32_t sum;

    /* Ethernet: locally administered addresses, one per side */
    memcpy(frame, "\x02\0\0\0\0\x02\x02\0\0\0\0\x01", 12);
    put16(frame + 12, v6 ? 0x86dd : 0x0800);
    o = 14;
    ip = frame + o;
    memset(ip, 0, iplen);
    if (v6) {
        ip[0] = 0x60;
        put16(ip + 4, (uint16_t)(20 + n));
        ip[6] = IPPROTO_TCP;
        ip[7] = 64;
        memcpy(ip + 8, &((struct sockaddr_in6 *)&src->addr)->sin6_addr, 16);
        memcpy(ip + 24, &((struct sockaddr_in6 *)&dst->addr)->sin6_addr, 16);
    } else {
        ip[0] = 0x45;
        put16(ip + 2, (uint16_t)(20 + 20 + n));
        ip[8] = 64;
        ip[9] = IPPROTO_TCP;
        memcpy(ip + 12, &((struct sockaddr_in *)&src->addr)->sin_addr, 4);
        memcpy(ip + 16, &((struct sockaddr_in *)&dst->addr)->sin_addr, 4);
        put16(ip + 10, fold(sum16(0, ip, 20)));
    }
    o += iplen;
    tcp = frame + o;
    memset(tcp, 0, 20);
    put16(tcp, port_of(&src->addr));
    put16(tcp + 2, port_of(&dst->addr));
    put32(tcp + 4, src->seq);
    put32(tcp + 8, (flags & 0x10) ? dst->seq : 0);
    tcp[12] = 5 << 4;
    tcp[13] = flags;
    put16(tcp + 14, 65535);
    if (n > 0)
        memcpy(tcp + 20, payload, n);
    /* the TCP checksum over the pseudo header */
    sum = v6 ? sum16(0, ip + 8, 32) : sum16(0, ip + 12, 8);
    sum += IPPROTO_TCP + (uint32_t)(20 + n);
    sum = sum16(sum, tcp, 20 + n);
    put16(tcp + 16, fold(sum));
    o += 20 + n;

    uint32_t rec[4] = {(uint32_t)(time_us / 1000000u), (uint32_t)(time_us % 1000000u), (uint32_t)o,
                       (uint32_t)o};
    fwrite(rec, 1, sizeof(rec), w->out);
    fwrite(frame, 1, o, w->out);
    src->seq += (uint32_t)n + ((flags & 0x03) ? 1 : 0); /* SYN and FIN count one */
}

static void pcap_data(struct tlog_pcap *w, uint64_t time_us, struct pcap_stream *st,
                      int from_client, const uint8_t *p, size_t n)
{
    struct pcap_end *src = from_client ? &st->c : &st->s;
    struct pcap_end *dst = from_client ? &st->s : &st->c;
    while (n > 0) {
        size_t k = n < PCAP_SEGMENT ? n : PCAP_SEGMENT;
        pcap_packet(w, time_us, src, dst, 0x18 /* PSH ACK */, p, k);
        p += k;
        n -= k;
    }
}

void tlog_pcap_render(struct tlog_pcap *w, const struct tlog_event *ev)
{
    struct pcap_stream *cs, *us;

    if (w == NULL || w->out == NULL || ev->session == 0 || ev->tls_switch)
        return;
    if (ev->kind == TLOG_CONNECT && ev->local != NULL && ev->peer != NULL) {
        struct pcap_stream *st = pcap_find(w, ev->session, ev->leg, 1);
        socklen_t ll = ev->local->sa_family == AF_INET6 ? sizeof(struct sockaddr_in6)
                                                        : sizeof(struct sockaddr_in);
        if (st == NULL)
            return;
        /* the client leg was connected to smtpscope; the upstream leg by it */
        struct pcap_end *local = ev->leg == TLOG_LEG_CLIENT ? &st->s : &st->c;
        struct pcap_end *peer = ev->leg == TLOG_LEG_CLIENT ? &st->c : &st->s;
        memcpy(&local->addr, ev->local, ll);
        memcpy(&peer->addr, ev->peer, ll);
        st->c.seq = 1000;
        st->s.seq = 5000;
        pcap_packet(w, ev->time_us, &st->c, &st->s, 0x02 /* SYN */, NULL, 0);
        pcap_packet(w, ev->time_us, &st->s, &st->c, 0x12 /* SYN ACK */, NULL, 0);
        pcap_packet(w, ev->time_us, &st->c, &st->s, 0x10 /* ACK */, NULL, 0);
        if (w->flush)
            fflush(w->out);
        return;
    }
    cs = pcap_find(w, ev->session, TLOG_LEG_CLIENT, 0);
    us = pcap_find(w, ev->session, TLOG_LEG_UPSTREAM, 0);
    switch (ev->kind) {
    case TLOG_COMMAND:
        /* a client command: on the client leg; relayed, on the upstream's
         * too. smtpscope's own commands: on the upstream leg. */
        if (ev->leg == TLOG_LEG_CLIENT && cs != NULL)
            pcap_data(w, ev->time_us, cs, 1, ev->bytes, ev->len);
        if ((ev->leg == TLOG_LEG_UPSTREAM || !ev->own) && us != NULL)
            pcap_data(w, ev->time_us, us, 1, ev->bytes, ev->len);
        break;
    case TLOG_REPLY:
        if (ev->leg == TLOG_LEG_UPSTREAM && us != NULL)
            pcap_data(w, ev->time_us, us, 0, ev->bytes, ev->len);
        if ((ev->leg == TLOG_LEG_CLIENT || !ev->own) && cs != NULL)
            pcap_data(w, ev->time_us, cs, 0, ev->bytes, ev->len);
        break;
    case TLOG_RAW:
        if (ev->leg == TLOG_LEG_CLIENT && cs != NULL)
            pcap_data(w, ev->time_us, cs, 1, ev->bytes, ev->len);
        else if (ev->leg == TLOG_LEG_UPSTREAM && us != NULL)
            pcap_data(w, ev->time_us, us, 1, ev->bytes, ev->len);
        break;
    case TLOG_CLOSE:
        for (int i = 0; i < 2; i++) {
            struct pcap_stream *st = i == 0 ? cs : us;
            if (st == NULL)
                continue;
            pcap_packet(w, ev->time_us, &st->c, &st->s, 0x11 /* FIN ACK */, NULL, 0);
            pcap_packet(w, ev->time_us, &st->s, &st->c, 0x11, NULL, 0);
            pcap_packet(w, ev->time_us, &st->c, &st->s, 0x10, NULL, 0);
            st->session = 0;
        }
        break;
    default:
        return;
    }
    if (w->flush)
        fflush(w->out);
}
