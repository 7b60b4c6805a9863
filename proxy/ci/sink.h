/*
 * sink - --sink DIR: the upstream implementation in which smtpscope itself
 * is the server (see sink.c): it answers as a permissive submission server
 * (AUTH PLAIN and LOGIN, checked against --sink-auth when given) and
 * stores every accepted message in DIR, indexed in DIR/index.jsonl.
 */
#ifndef SMTPSCOPE_SINK_H
#define SMTPSCOPE_SINK_H

#include "../smtp/upstream.h"

extern const struct upstream_ops sink_ops;

#endif
