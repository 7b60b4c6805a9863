/* fuzz_search - Mailpit's search syntax: any query compiles (or says out of
 * memory), matches without reading past what it was given, and cleaning
 * leaves no upper-case ASCII, no doubled or outer space. */
#include "mailbox/search.h"

#include <ctype.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *s = malloc(size + 1);
    if (s == NULL)
        return 0;
    memcpy(s, data, size);
    s[size] = '\0';
    char *c = search_clean(s);
    if (c != NULL) {
        size_t n = strlen(c);
        if (n > 0 && (c[0] == ' ' || c[n - 1] == ' '))
            abort();
        for (size_t i = 0; i < n; i++)
            if ((c[i] >= 'A' && c[i] <= 'Z') || (c[i] == ' ' && c[i + 1] == ' '))
                abort();
        free(c);
    }
    struct search *q = search_compile(s, 3600);
    if (q != NULL) {
        struct search_doc d = {.from = "A <a@x>", .to = s, .subject = "s", .text = "t", .size = 5};
        (void)search_match(q, &d);
        struct search_doc empty = {0};
        (void)search_match(q, &empty);
        search_free(q);
    }
    (void)search_size(s);
    free(s);
    return 0;
}
