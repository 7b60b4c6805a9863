/* fuzz_mime - any bytes kept as a message: the store takes them, and every
 * view of them (the listing, the message, its headers, each part, the
 * bodies) answers with JSON that jansson can write, never a crash or a
 * leak. The path the HTTP API takes for a message nobody checked. */
#include "mailbox/mime.h"
#include "mailbox/store.h"
#include "mailbox/view.h"

#include <jansson.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

/* dump - the JSON must be writable (valid UTF-8 throughout). */
static void dump(json_t *j)
{
    if (j == NULL)
        abort();
    char *s = json_dumps(j, 0);
    if (s == NULL)
        abort();
    free(s);
    json_decref(j);
}

static void parts(struct mbox *m, const char *id, json_t *list)
{
    size_t i;
    json_t *p;

    json_array_foreach(list, i, p)
    {
        const char *pid = json_string_value(json_object_get(p, "PartID"));
        uint8_t *buf = NULL;
        size_t n = 0;
        char *ct = NULL;
        if (pid == NULL || mbox_part(m, id, pid, &buf, &n, &ct) != 0)
            abort(); /* a listed part can be fetched */
        free(buf);
        free(ct);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static struct mbox *m;
    char id[MBOX_ID_LEN + 1];
    struct mbox_facts f;

    if (m == NULL && mbox_new(&m, 4, 1 << 20) != 0)
        abort();
    memset(&f, 0, sizeof(f));
    if (mbox_add(m, data, size, &f, 1, id) != 0)
        abort();
    size_t len;
    char *list = mbox_view_list(m, 0, 10, &len);
    json_t *parsed = list != NULL ? json_loadb(list, len, 0, NULL) : NULL;
    free(list);
    dump(parsed); /* the list is JSON */
    json_t *msg = mbox_view_message(m, id, 1);
    if (msg == NULL)
        abort();
    parts(m, id, json_object_get(msg, "Attachments"));
    parts(m, id, json_object_get(msg, "Inline"));
    dump(msg);
    dump(mbox_view_headers(m, id));
    char *text = NULL, *html = NULL;
    if (mbox_bodies(m, id, &text, &html) != 0)
        abort();
    free(text);
    free(html);
    mbox_delete(m, NULL, 0);
    return 0;
}
