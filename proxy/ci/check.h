/* check - `smtpscope check`: expectations over a transcript or a sink. */
#ifndef SMTPSCOPE_CHECK_H
#define SMTPSCOPE_CHECK_H

/* tlog_check_main - argv after "check"; returns the exit status (0, 1, 2). */
int tlog_check_main(int argc, char **argv);

#endif
