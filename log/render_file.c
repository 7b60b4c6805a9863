/*
 * render_file - one readable transcript file per session in --transcript-dir,
 * named by the session's start time and id (20261127T083501.123456Z-1.log),
 * created 0600 and written line by line with write(2) as the session runs,
 * so nothing already said is lost if smtpscope is killed. Owns one
 * descriptor per live session, closed with the session's close event.
 */
#include "render_console.h"
#include "render_file.h"
#include "render_json.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

struct file_slot {
    uint64_t session; /* 0: free */
    int fd;
};

static char *files_dir;
static struct file_slot *files;
static size_t files_cap;

int tlog_files_open(const char *dir, char *err, size_t errlen)
{
    struct stat st;

    if (stat(dir, &st) != 0 || !S_ISDIR(st.st_mode) || access(dir, W_OK) != 0) {
        snprintf(err, errlen, "--transcript-dir %s: not a writable directory", dir);
        return -1;
    }
    files_dir = strdup(dir);
    return files_dir != NULL ? 0 : -1;
}

static struct file_slot *files_find(uint64_t session, int create, uint64_t time_us)
{
    struct file_slot *freeslot = NULL;
    char path[4096], stamp[32];
    time_t secs;
    struct tm tm;

    for (size_t i = 0; i < files_cap; i++) {
        if (files[i].session == session)
            return &files[i];
        if (files[i].session == 0 && freeslot == NULL)
            freeslot = &files[i];
    }
    if (!create)
        return NULL;
    if (freeslot == NULL) {
        size_t cap = files_cap ? files_cap * 2 : 64;
        struct file_slot *p = realloc(files, cap * sizeof(*p));
        if (p == NULL)
            return NULL;
        memset(p + files_cap, 0, (cap - files_cap) * sizeof(*p));
        freeslot = p + files_cap;
        files = p;
        files_cap = cap;
    }
    secs = (time_t)(time_us / 1000000u);
    gmtime_r(&secs, &tm);
    strftime(stamp, sizeof(stamp), "%Y%m%dT%H%M%S", &tm);
    snprintf(path, sizeof(path), "%s/%s.%06uZ-%llu.log", files_dir, stamp,
             (unsigned)(time_us % 1000000u), (unsigned long long)session);
    freeslot->fd =
        open(path, O_WRONLY | O_CREAT | O_EXCL | O_APPEND | O_CLOEXEC | O_NOFOLLOW, 0600);
    if (freeslot->fd < 0)
        return NULL;
    freeslot->session = session;
    return freeslot;
}

void tlog_files_render(const struct tlog_event *ev, const char *text, size_t n)
{
    char line[TLOG_LINE_MAX];
    struct file_slot *f;

    if (files_dir == NULL || ev->session == 0 || ev->kind == TLOG_RAW)
        return;
    f = files_find(ev->session, ev->kind == TLOG_CONNECT, ev->time_us);
    if (f == NULL)
        return;
    if (text == NULL) {
        n = tlog_format_line(ev, line, sizeof(line), 0, 0);
        text = line;
    }
    if (n > 0)
        tlog_write_all(f->fd, text, n);
    if (ev->kind == TLOG_CLOSE) {
        close(f->fd);
        f->session = 0;
        f->fd = -1;
    }
}

void tlog_files_close(void)
{
    for (size_t i = 0; i < files_cap; i++)
        if (files[i].session != 0)
            close(files[i].fd);
    free(files);
    files = NULL;
    files_cap = 0;
    free(files_dir);
    files_dir = NULL;
}
