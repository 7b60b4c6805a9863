/*
 * parse - pure SMTP parsing: commands, replies, DATA framing, EHLO
 * rewriting, MAIL/RCPT paths and header values. No I/O and no sessions, so
 * unit tests and fuzzers drive it directly. Every decision keeps its state
 * across calls and never depends on how the bytes were split.
 */
#ifndef SMTPSCOPE_SMTP_PARSE_H
#define SMTPSCOPE_SMTP_PARSE_H

#include <stddef.h>
#include <stdint.h>

#define SMTP_CMD_LINE_MAX   2048 /* RFC 5321 4.5.3.1.4 asks for 512 at least */
#define SMTP_REPLY_LINE_MAX 2048 /* RFC 5321 4.5.3.1.5 asks for 512 at least */
#define SMTP_REPLY_MAX      4096 /* one whole (multi-line) reply */
#define SMTP_REPLY_LINES    64

/* ---- commands ---------------------------------------------------------- */

enum smtp_cmd {
    SMTP_CMD_UNKNOWN,
    SMTP_CMD_HELO,
    SMTP_CMD_EHLO,
    SMTP_CMD_LHLO,
    SMTP_CMD_STARTTLS,
    SMTP_CMD_AUTH,
    SMTP_CMD_MAIL,
    SMTP_CMD_RCPT,
    SMTP_CMD_DATA,
    SMTP_CMD_BDAT,
    SMTP_CMD_RSET,
    SMTP_CMD_NOOP,
    SMTP_CMD_QUIT,
    SMTP_CMD_VRFY,
    SMTP_CMD_EXPN,
    SMTP_CMD_HELP,
    SMTP_CMD_COUNT
};

/* Command flags, one table row per command (smtp_parse.c). */
#define SMTP_CF_SYNC   0x01 /* RFC 2920 3.1: nothing after it until its reply */
#define SMTP_CF_HELLO  0x02 /* its reply is the capability list */
#define SMTP_CF_SECRET 0x04 /* may carry credentials */
#define SMTP_CF_LOCAL  0x08 /* answered by smtpscope, never relayed */
#define SMTP_CF_QUIT   0x10 /* the session ends after its reply */

/* Line flags: what is wrong with a line as a command line. */
#define SMTP_LF_BARE_CR 0x01
#define SMTP_LF_BARE_LF 0x02
#define SMTP_LF_NUL     0x04

/* smtp_line_end - length of the first line in buf (through its LF), or 0
 * when buf holds no LF. */
size_t smtp_line_end(const uint8_t *buf, size_t len);
/* smtp_looks_like_reply - do these first bytes of a stream start an SMTP
 * reply ("220 " or "220-")? Tells a plaintext greeting from a TLS record. */
int smtp_looks_like_reply(const uint8_t *p, size_t n);
/* smtp_cmd_line_end - length of the first command line in buf, through its
 * CRLF, or 0 when buf holds no CRLF. RFC 5321 2.3.8: a command line ends at
 * CRLF only; a bare LF or CR before it belongs to the line (and makes it
 * invalid, see smtp_line_flags), so one client line is never taken as two. */
size_t smtp_cmd_line_end(const uint8_t *buf, size_t len);
/* smtp_line_flags - SMTP_LF_* for a line that ends in LF. */
unsigned smtp_line_flags(const uint8_t *line, size_t len);
/* smtp_cmd_parse - the command of a line, and its argument (after one SP,
 * without the line ending). */
enum smtp_cmd smtp_cmd_parse(const uint8_t *line, size_t len, const uint8_t **arg, size_t *arglen);
unsigned smtp_cmd_flags(enum smtp_cmd cmd);
const char *smtp_cmd_name(enum smtp_cmd cmd);

/* smtp_cmdline - one client command line, parsed once (smtp_cmdline_parse)
 * into what every consumer needs: the server machine's table, the sink,
 * the replay. It borrows the line. */
struct smtp_cmdline {
    const uint8_t *line; /* as on the wire, CRLF included */
    size_t len;
    enum smtp_cmd cmd;
    const uint8_t *arg; /* after one SP, without the line ending */
    size_t arglen;
    unsigned flags;  /* SMTP_CF_* of cmd */
    unsigned lflags; /* SMTP_LF_*: not 0, the line must not be relayed */
    int bdat_ok;     /* BDAT: its argument parsed, into these */
    int bdat_last;
    uint64_t bdat_size;
};

void smtp_cmdline_parse(const uint8_t *line, size_t len, struct smtp_cmdline *c);

/* smtp_path - the address in a MAIL or RCPT argument ("FROM:<a@b> SIZE=1"):
 * what is between the first '<' and the '>' after it. 0 with *start, *len
 * set; -1 when there is no <...>, and then *start, *len are the word after
 * the ':' (or the start of arg), for callers that take that. */
int smtp_path(const uint8_t *arg, size_t n, size_t *start, size_t *len);

/* smtp_header_find - the next header NAME: at or after from in a message
 * header block (CRLF lines): its value, unfolded (RFC 5322 2.2.3: CRLF
 * before WSP removed) and without leading WSP, into out (NUL-terminated,
 * cut at cap - 1; *outlen its length). Returns where to look for the next
 * one, or NULL when there is none. */
const char *smtp_header_find(const char *from, const char *name, char *out, size_t cap,
                             size_t *outlen);

/* smtp_trim_eol - n without the CRs and LFs that end p[0..n). */
size_t smtp_trim_eol(const uint8_t *p, size_t n);
/* smtp_line_code - the reply code of a line's first three digits, or 0. */
int smtp_line_code(const uint8_t *p, size_t n);

/* ---- replies ----------------------------------------------------------- */

struct smtp_reply {
    uint8_t buf[SMTP_REPLY_MAX]; /* the reply's lines as received, CRLF and all */
    size_t len;
    size_t line_start[SMTP_REPLY_LINES + 1]; /* line i is [start[i], start[i+1]) */
    int nlines;
    int code;
    int complete;
};

enum smtp_reply_err {
    SMTP_REPLY_OK = 0,
    SMTP_REPLY_ERR_CODE = -1,     /* not three digits 2xx-5xx and SP/-/CRLF */
    SMTP_REPLY_ERR_MIXED = -2,    /* a continuation with another code */
    SMTP_REPLY_ERR_LONG = -3,     /* a line longer than SMTP_REPLY_LINE_MAX */
    SMTP_REPLY_ERR_TOO_MANY = -4, /* more lines or bytes than one reply may have */
    SMTP_REPLY_ERR_EOL = -5,      /* a line ending in bare LF, or NUL/CR inside */
};

void smtp_reply_reset(struct smtp_reply *r);
/* smtp_reply_feed - take bytes until one reply is complete. Returns 1 when
 * r->complete (the bytes after it are not consumed: *consumed says how many
 * were), 0 when all were consumed and more are needed, or a negative
 * smtp_reply_err. */
int smtp_reply_feed(struct smtp_reply *r, const uint8_t *data, size_t len, size_t *consumed);
const char *smtp_reply_strerror(int err);
/* smtp_reply_line - line i of a complete reply. */
const uint8_t *smtp_reply_line(const struct smtp_reply *r, int i, size_t *len);
/* smtp_reply_has_keyword - does an EHLO reply advertise this extension? */
int smtp_reply_has_keyword(const struct smtp_reply *r, const char *kw);

/* ---- DATA framing (RFC 5321 4.1.1.4, 4.5.2) ---------------------------- */

#define SMTP_DATA_LINE_MAX 65536 /* octets of one message line; RFC 5321 4.5.3.1.6 asks 1000 */

struct smtp_data_framer {
    int bol;             /* the raw bytes are at the start of a line: the last were CRLF */
    int out_bol;         /* the output is at the start of a line */
    int dot;             /* 1: "." at bol held back; 2: ".\r" held back */
    int cr;              /* a CR held back */
    unsigned line_flags; /* SMTP_LF_* of the current line */
};

enum smtp_data_ev {
    SMTP_DATA_MORE, /* the consumed bytes end inside a line */
    SMTP_DATA_LINE, /* the consumed bytes end a line (LF) */
    SMTP_DATA_END,  /* the consumed bytes end with CRLF "." CRLF */
};

/* Where the framer writes the bytes meant for the upstream. p points into
 * the input (runs of it) or to constants; it is only valid for the call. */
typedef void smtp_data_out_fn(void *arg, const uint8_t *p, size_t n);

void smtp_data_reset(struct smtp_data_framer *f);
/* smtp_data_next - consume in[0..len) up to and including the next LF,
 * writing the bytes for the upstream through out. Returns bytes consumed;
 * *ev says how they end; *line_flags (for LINE and END) the flags of the
 * line just ended. End of data is only CRLF "." CRLF, decided on the raw
 * bytes. Valid input comes out unchanged; otherwise every output line ends
 * in CRLF, NUL is dropped and dots are stuffed so that the output holds no
 * bare CR, no bare LF and no end of data but the one smtpscope saw. The
 * result does not depend on how the input is split across calls. */
size_t smtp_data_next(struct smtp_data_framer *f, const uint8_t *in, size_t len,
                      enum smtp_data_ev *ev, unsigned *line_flags, smtp_data_out_fn *out,
                      void *arg);

/* ---- BDAT (RFC 3030 2) ------------------------------------------------- */

#define SMTP_BDAT_DIGITS_MAX 18 /* chunk sizes below 10^18 octets */

/* smtp_bdat_parse - "SIZE" or "SIZE LAST" (the argument of BDAT); 0 or -1. */
int smtp_bdat_parse(const uint8_t *arg, size_t len, uint64_t *size, int *last);

/* ---- EHLO rewriting (RFC 5321 4.1.1.1) --------------------------------- */

#define SMTP_EHLO_ADD_STARTTLS  0x01
#define SMTP_EHLO_DROP_STARTTLS 0x02
#define SMTP_EHLO_DROP_CHUNKING 0x04 /* CHUNKING and BINARYMIME */
#define SMTP_EHLO_DROP_AUTH     0x08 /* AUTH (and the old AUTH=) */
#define SMTP_EHLO_ADD_AUTH      0x10 /* "AUTH PLAIN LOGIN" (with DROP_AUTH: instead) */

/* smtp_ehlo_rewrite - the 250 reply r with extensions added or dropped,
 * still a valid multi-line reply, into out. Returns its length, or 0 when
 * it is unchanged (out unused). *changes gets a short description. */
size_t smtp_ehlo_rewrite(const struct smtp_reply *r, unsigned how, uint8_t *out, size_t cap,
                         char *changes, size_t changes_len);

#endif
