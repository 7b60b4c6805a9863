/* fault - fault injection rules (--fault), parsed once, checked per command. */
#ifndef SMTPSCOPE_FAULT_H
#define SMTPSCOPE_FAULT_H

#include <stddef.h>
#include <stdint.h>

#define FAULT_RULES_MAX 64
#define FAULT_SPEC_MAX  600

enum fault_stage {
    FAULT_CONNECT,
    FAULT_EHLO,
    FAULT_STARTTLS,
    FAULT_AUTH,
    FAULT_MAIL,
    FAULT_RCPT,
    FAULT_DATA,
    FAULT_EOD,
    FAULT_STAGES
};

enum fault_action { FAULT_REPLY, FAULT_DROP, FAULT_DELAY, FAULT_TLS_FAIL };

struct fault_rule {
    enum fault_stage stage;
    char match[256]; /* "" matches anything */
    enum fault_action action;
    char reply[512];
    uint64_t delay_ms;
    int percent;
    unsigned nth; /* 0: every match */
    unsigned matches;
    char spec[FAULT_SPEC_MAX];
};

struct faults {
    struct fault_rule rules[FAULT_RULES_MAX];
    int n;
    uint64_t rng;
    int (*parse_duration)(const char *s, uint64_t *ms);
    /* ACTION persona:NAME: the reply of the --persona's scenario NAME
     * (without CRLF); -1 with err set. NULL: no such action. */
    int (*scenario)(void *arg, const char *name, char *reply, size_t cap, char *err, size_t errlen);
    void *scenario_arg;
};

int fault_parse(struct faults *f, const char *spec, char *err, size_t errlen);
/* fault_check - the rule that fires for this stage and argument, or NULL. */
const struct fault_rule *fault_check(struct faults *f, enum fault_stage st, const uint8_t *arg,
                                     size_t arglen);
const char *fault_stage_name(enum fault_stage st);

#endif
