/*
 * html - an HTML part as text, for search and check --body-contains: the
 * text a reader sees, parsed with libxml2's HTML parser (entities decoded,
 * script, style and head left out, block elements and <br> separated by a
 * space, white space collapsed). Never a sanitiser: the API serves HTML as
 * it came, and the UI sandboxes it.
 */
#ifndef SMTPSCOPE_HTML_H
#define SMTPSCOPE_HTML_H

#include <stddef.h>

/* html_text - the text of len bytes of HTML in UTF-8 (the part decoded to
 * UTF-8 first). A new NUL-terminated string, or NULL when out of memory;
 * malformed HTML gives what libxml2 recovers, never an error. */
char *html_text(const char *html, size_t len);

#endif
