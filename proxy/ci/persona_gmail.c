/*
 * persona_gmail - --persona gmail: smtp.gmail.com:587 as data, for the
 * engine in persona.c. No code here.
 *
 * Sources. Confirmed from public transcripts of real sessions (client
 * debug logs in issue trackers): the greeting, both EHLO lists, 235, the
 * 250/354/221 texts with their "<id> - gsmtp" ending, "504 5.7.4
 * Unrecognized Authentication Type", 530 5.7.0 (both), 535 5.7.8, 534
 * 5.7.9, "454 4.7.0 Too many login attempts", "550 5.4.5 Daily user
 * sending", 552 5.2.3 (its three lines), the XOAUTH2 error challenge, and
 * Google's list of its SMTP errors (421 4.7.0 "Try again later, closing
 * connection.", 454 4.5.0 for pipelining after STARTTLS, 452 4.5.3).
 * Gmail has said "Learn more at" where it now says "For more information,
 * go to"; the second is used throughout.
 * Plausible but not confirmed (marked "unconfirmed" below): HELO, the
 * texts of sequence and syntax errors, RSET, VRFY, HELP, the unknown
 * command, AUTH twice, bad base64, "*", the OAUTHBEARER challenge, the
 * 552 5.3.4 of SIZE=, and when Gmail sends the 454 4.5.0 (here: instead of
 * the 220 to STARTTLS).
 *
 * {id} is a made-up session id of Gmail's form ("j5-20020a05620a288500b00
 * 77d8526bcdesm2261723qkp.86"); it never names a real session.
 */
#include "persona.h"

#define GMAIL_MORE "For more information, go to"
#define GMAIL_END  " {id} - gsmtp"
#define GMAIL_CAPS_HEAD                                                                            \
    "250-{host} at your service, [{ip}]\r\n250-SIZE 35882577\r\n250-8BITMIME\r\n"
#define GMAIL_CAPS_TAIL "250-ENHANCEDSTATUSCODES\r\n250-PIPELINING\r\n250-CHUNKING\r\n250 SMTPUTF8"
#define GMAIL_MECHS     "LOGIN PLAIN XOAUTH2 PLAIN-CLIENTTOKEN OAUTHBEARER XOAUTH"

#define GMAIL_BAD_CREDENTIALS                                                                      \
    "535-5.7.8 Username and Password not accepted. " GMAIL_MORE "\r\n"                             \
    "535 5.7.8  https://support.google.com/mail/?p=BadCredentials" GMAIL_END
#define GMAIL_TOO_LARGE                                                                            \
    "552-5.2.3 Your message exceeded Google's message size limits. Please visit\r\n"               \
    "552-5.2.3  https://support.google.com/mail/?p=MaxSizeError to view our size\r\n"              \
    "552 5.2.3 guidelines." GMAIL_END

static const struct persona_scenario gmail_scenarios[] = {
    {"bad-credentials", PERSONA_AT_AUTH, GMAIL_BAD_CREDENTIALS,
     "535 5.7.8: wrong user or password (or a normal password where an app password is due)"},
    {"app-password-required", PERSONA_AT_AUTH,
     "534-5.7.9 Application-specific password required. " GMAIL_MORE "\r\n"
     "534 5.7.9  https://support.google.com/mail/?p=InvalidSecondFactor" GMAIL_END,
     "534 5.7.9: the account has 2-Step Verification and wants an app password"},
    {"too-many-logins", PERSONA_AT_AUTH,
     "454-4.7.0 Too many login attempts, please try again later. " GMAIL_MORE "\r\n"
     "454 4.7.0  https://support.google.com/mail/answer/7126229" GMAIL_END,
     "454 4.7.0: logins throttled, a temporary failure"},
    {"try-again-later", PERSONA_AT_CONNECT,
     "421 4.7.0 Try again later, closing connection." GMAIL_END,
     "421 4.7.0 in place of the greeting, then the connection closes"},
    {"too-large", PERSONA_AT_EOD, GMAIL_TOO_LARGE,
     "552 5.2.3 at the end of the message: over Google's size limit (not stored)"},
    {"daily-limit", PERSONA_AT_MAIL,
     "550-5.4.5 Daily user sending limit exceeded. " GMAIL_MORE "\r\n"
     "550 5.4.5  https://support.google.com/a/answer/166852" GMAIL_END,
     "550 5.4.5 to MAIL: the account's daily sending limit is reached"},
};

const struct persona persona_gmail = {
    .name = "gmail",
    .host = "smtp.gmail.com",
    .about = "smtp.gmail.com:587",
    .rules = PERSONA_TLS_FIRST | PERSONA_AUTH_FIRST,
    .size_max = 35882577,
    .mechs = GMAIL_MECHS,
    .id_form = "@#-20020a%%%%%%%%%%00b0%%%%%%%%%%%%sm#######@@@.##",
    .text =
        {
            [PERSONA_GREETING] = "220 {host} ESMTP" GMAIL_END,
            [PERSONA_EHLO] = GMAIL_CAPS_HEAD "250-STARTTLS\r\n" GMAIL_CAPS_TAIL,
            [PERSONA_EHLO_TLS] = GMAIL_CAPS_HEAD "250-AUTH " GMAIL_MECHS "\r\n" GMAIL_CAPS_TAIL,
            [PERSONA_HELO] = "250 {host} at your service", /* unconfirmed */
            [PERSONA_NEED_TLS] = "530 5.7.0 Must issue a STARTTLS command first." GMAIL_END,
            [PERSONA_NEED_AUTH] =
                "530-5.7.0 Authentication Required. " GMAIL_MORE "\r\n"
                "530 5.7.0  https://support.google.com/mail/?p=WantAuthError" GMAIL_END,
            [PERSONA_STARTTLS_PIPELINED] =
                "454 4.5.0 SMTP protocol violation, no commands allowed to pipeline after "
                "STARTTLS, see RFC 3207." GMAIL_END,
            [PERSONA_AUTH_OK] = "235 2.7.0 Accepted",
            [PERSONA_AUTH_BAD] = GMAIL_BAD_CREDENTIALS,
            [PERSONA_AUTH_MECH] = "504 5.7.4 Unrecognized Authentication Type" GMAIL_END,
            [PERSONA_AUTH_TWICE] = "503 5.5.1 Already authenticated." GMAIL_END, /* unconfirmed */
            [PERSONA_AUTH_B64] = "501 5.5.2 Cannot Decode response" GMAIL_END,   /* unconfirmed */
            [PERSONA_AUTH_CANCEL] =
                "501 5.7.0 Authentication cancelled." GMAIL_END, /* unconfirmed */
            /* {"status":"400","schemes":"Bearer","scope":"https://mail.google.com/"} */
            [PERSONA_XOAUTH2_ERROR] = "334 eyJzdGF0dXMiOiI0MDAiLCJzY2hlbWVzIjoiQmVhcmVyIiwic2NvcGUi"
                                      "OiJodHRwczovL21haWwuZ29vZ2xlLmNvbS8ifQ==",
            /* unconfirmed: {"status":"invalid_token","schemes":"Bearer",
             * "scope":"https://mail.google.com/"} (RFC 7628 3.2.2's form) */
            [PERSONA_OAUTHBEARER_ERROR] =
                "334 eyJzdGF0dXMiOiJpbnZhbGlkX3Rva2VuIiwic2NoZW1lcyI6IkJlYXJlciIsInNjb3BlIjoiaHR0"
                "cHM6Ly9tYWlsLmdvb2dsZS5jb20vIn0=",
            [PERSONA_MAIL_OK] = "250 2.1.0 OK" GMAIL_END,
            [PERSONA_MAIL_NESTED] = "503 5.5.1 Nested MAIL command." GMAIL_END, /* unconfirmed */
            [PERSONA_MAIL_SYNTAX] =
                "555-5.5.2 Syntax error. " GMAIL_MORE "\r\n" /* unconfirmed */
                "555 5.5.2  https://support.google.com/a/answer/3221692" GMAIL_END,
            [PERSONA_MAIL_SIZE] = /* unconfirmed */
            "552 5.3.4 Message size exceeds fixed maximum message size" GMAIL_END,
            [PERSONA_RCPT_OK] = "250 2.1.5 OK" GMAIL_END,
            [PERSONA_RCPT_FIRST] = "503 5.5.1 MAIL first." GMAIL_END, /* unconfirmed */
            [PERSONA_RCPT_SYNTAX] =                                   /* unconfirmed */
            "553-5.1.3 The recipient address is not a valid RFC 5321 address. " GMAIL_MORE "\r\n"
            "553 5.1.3  https://support.google.com/a/answer/3221692" GMAIL_END,
            [PERSONA_RCPT_MANY] = "452 4.5.3 Your message has too many recipients." GMAIL_END,
            [PERSONA_DATA_GO] = "354  Go ahead" GMAIL_END,
            [PERSONA_DATA_FIRST] = "503 5.5.1 RCPT first." GMAIL_END, /* unconfirmed */
            [PERSONA_EOD_OK] = "250 2.0.0 OK  {time}" GMAIL_END,
            [PERSONA_EOD_SIZE] = GMAIL_TOO_LARGE,
            [PERSONA_RSET] = "250 2.1.5 Flushed" GMAIL_END, /* unconfirmed */
            [PERSONA_NOOP] = "250 2.0.0 OK" GMAIL_END,
            [PERSONA_QUIT] = "221 2.0.0 closing connection" GMAIL_END,
            [PERSONA_VRFY] =
                "252 2.1.5 Send some mail, I'll try my best" GMAIL_END, /* unconfirmed */
            [PERSONA_HELP] = "214 2.0.0  https://www.google.com/search?btnI&q=RFC+5321" GMAIL_END,
            [PERSONA_UNKNOWN] = /* unconfirmed */
            "502-5.5.1 Unrecognized command. " GMAIL_MORE "\r\n"
            "502 5.5.1  https://support.google.com/a/answer/3221692" GMAIL_END,
        },
    .scenarios = gmail_scenarios,
    .nscenarios = sizeof(gmail_scenarios) / sizeof(gmail_scenarios[0]),
};
