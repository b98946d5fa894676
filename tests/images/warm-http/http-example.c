/*
 * http-example MODEL [--hostile] [--never-listen] [--die] [--spill]
 *
 * The http-mode example of docs/functions.md: an HTTP/1.1 server on the Unix socket named by
 * $PIPELINES_HTTP_SOCKET (no network: the engine connects through the bound control folder).
 * It loads MODEL, a table of "word<TAB>replacement" lines, ONCE at start, and for each request
 * answers the body with every word found in the table replaced (POST /, any path). A thread per
 * connection, keep-alive, Content-Length bodies up to 16 MiB. Each response says how many times
 * the model was loaded (X-Model-Loads: always 1) and how many requests this process served.
 *
 * For the tests only, --hostile adds /crash (the process exits), /hang (never answers),
 * /garbage (bytes that are not HTTP) and /slow?ms=N; --never-listen starts and never listens;
 * --die exits at once; --spill, once it has answered its first request, writes to
 * /run/pipelines/spill in the background without end (1 MiB every 20 ms), between requests.
 */
#define _GNU_SOURCE
#include <ctype.h>
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#define MAX_HEADER 16384
#define MAX_BODY (16 << 20)
#define MAX_WORDS 65536

static char *keys[MAX_WORDS], *values[MAX_WORDS];
static size_t nwords;
static int model_loads;
static int hostile;
static atomic_long served;
static int spill;
static atomic_int spilling;

/* --spill: what a server leaking to its folder between requests does; the engine must retire it. */
static void *spill_forever(void *arg)
{
    (void)arg;
    static char chunk[1 << 20];
    memset(chunk, 'x', sizeof chunk);
    FILE *f = fopen("/run/pipelines/spill", "we");
    struct timespec pause_ = {0, 20 * 1000000};
    for (;;) {
        if (f && fwrite(chunk, 1, sizeof chunk, f) == sizeof chunk)
            fflush(f);
        nanosleep(&pause_, NULL);
    }
    return NULL;
}

static void load_model(const char *path)
{
    FILE *f = fopen(path, "re");
    char line[1024];
    if (!f) {
        fprintf(stderr, "http-example: cannot open the model %s: %s\n", path, strerror(errno));
        exit(1);
    }
    while (fgets(line, sizeof line, f) && nwords < MAX_WORDS) {
        char *tab = strchr(line, '\t');
        if (line[0] == '#' || !tab)
            continue;
        *tab = 0;
        line[strcspn(tab + 1, "\r\n") + (size_t)(tab + 1 - line)] = 0;
        keys[nwords] = strdup(line);
        values[nwords] = strdup(tab + 1);
        nwords++;
    }
    fclose(f);
    model_loads++;
}

static const char *lookup(const char *word, size_t n)
{
    for (size_t i = 0; i < nwords; i++)
        if (strlen(keys[i]) == n && strncasecmp(keys[i], word, n) == 0)
            return values[i];
    return NULL;
}

static int write_all(int fd, const char *p, size_t n)
{
    while (n > 0) {
        ssize_t w = send(fd, p, n, MSG_NOSIGNAL);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            return -1;
        p += w;
        n -= (size_t)w;
    }
    return 0;
}

static int respond(int fd, int status, const char *reason, const char *body, size_t n, int keep)
{
    char head[512];
    int h = snprintf(head, sizeof head,
                     "HTTP/1.1 %d %s\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: %zu\r\n"
                     "X-Model-Loads: %d\r\nX-Model-Entries: %zu\r\nX-Requests: %ld\r\nX-Server-Pid: %d\r\n%s\r\n",
                     status, reason, n, model_loads, nwords, atomic_load(&served), (int)getpid(),
                     keep ? "" : "Connection: close\r\n");
    return write_all(fd, head, (size_t)h) || write_all(fd, body, n) ? -1 : 0;
}

/* The body with each word (letters and digits) that is in the table replaced. */
static char *translate(const char *in, size_t n, size_t *out_n)
{
    size_t cap = n * 2 + 64, len = 0;
    char *out = malloc(cap);
    for (size_t i = 0; out && i < n;) {
        size_t j = i;
        while (j < n && isalnum((unsigned char)in[j]))
            j++;
        const char *piece = in + i;
        size_t plen = j > i ? j - i : 1;
        const char *r = j > i ? lookup(in + i, j - i) : NULL;
        if (r) {
            piece = r;
            plen = strlen(r);
        }
        if (len + plen + 1 > cap) {
            cap = (len + plen + 1) * 2;
            char *grown = realloc(out, cap);
            if (!grown) {
                free(out);
                return NULL;
            }
            out = grown;
        }
        memcpy(out + len, piece, plen);
        len += plen;
        i = j > i ? j : i + 1;
    }
    *out_n = len;
    return out;
}

static void *serve(void *arg)
{
    int fd = (int)(long)arg;
    char *buf = malloc(MAX_HEADER + 1);
    size_t have = 0;
    for (;;) {
        char *end;
        buf[have] = 0;
        while (!(end = strstr(buf, "\r\n\r\n"))) {
            if (have >= MAX_HEADER)
                goto done;
            ssize_t r = recv(fd, buf + have, MAX_HEADER - have, 0);
            if (r <= 0)
                goto done;
            have += (size_t)r;
            buf[have] = 0;
        }
        size_t header_len = (size_t)(end - buf) + 4;
        char method[16] = "", path[1024] = "";
        sscanf(buf, "%15s %1023s", method, path);
        long length = 0;
        int keep = 1;
        for (char *line = strstr(buf, "\r\n") + 2; line < end; line = strstr(line, "\r\n") + 2) {
            if (strncasecmp(line, "Content-Length:", 15) == 0)
                length = strtol(line + 15, NULL, 10);
            else if (strncasecmp(line, "Transfer-Encoding:", 18) == 0) {
                respond(fd, 411, "Length Required", "send a Content-Length\n", 21, 0);
                goto done;
            } else if (strncasecmp(line, "Connection:", 11) == 0 && strcasestr(line, "close"))
                keep = 0;
        }
        if (length < 0 || length > MAX_BODY) {
            respond(fd, 413, "Payload Too Large", "at most 16 MiB\n", 15, 0);
            goto done;
        }
        char *body = malloc((size_t)length + 1);
        size_t got = have - header_len < (size_t)length ? have - header_len : (size_t)length;
        memcpy(body, buf + header_len, got);
        while (got < (size_t)length) {
            ssize_t r = recv(fd, body + got, (size_t)length - got, 0);
            if (r <= 0) {
                free(body);
                goto done;
            }
            got += (size_t)r;
        }
        /* what came after this request's body is the next request's start */
        size_t used = header_len + (size_t)length < have ? header_len + (size_t)length : have;
        memmove(buf, buf + used, have - used);
        have -= used;
        atomic_fetch_add(&served, 1);

        int rc;
        if (hostile && strcmp(path, "/crash") == 0) {
            fprintf(stderr, "http-example: crashing as asked\n");
            _exit(3);
        } else if (hostile && strcmp(path, "/hang") == 0) {
            for (;;)
                pause();
        } else if (hostile && strcmp(path, "/garbage") == 0) {
            write_all(fd, "\x01\x02 this is not HTTP\r\n\r\n", 23);
            free(body);
            goto done;
        } else if (hostile && strncmp(path, "/slow?ms=", 9) == 0) {
            long ms = strtol(path + 9, NULL, 10);
            struct timespec t = {ms / 1000, (ms % 1000) * 1000000};
            nanosleep(&t, NULL);
            rc = respond(fd, 200, "OK", body, (size_t)length, keep);
        } else if (strcmp(path, "/healthz") == 0) {
            rc = respond(fd, 200, "OK", "ok\n", 3, keep);
        } else {
            size_t n;
            char *out = translate(body, (size_t)length, &n);
            rc = out ? respond(fd, 200, "OK", out, n, keep) : respond(fd, 500, "Internal Server Error", "out of memory\n", 14, 0);
            free(out);
        }
        free(body);
        if (spill && atomic_exchange(&spilling, 1) == 0) {
            pthread_t t;
            pthread_create(&t, NULL, spill_forever, NULL);
            pthread_detach(t);
        }
        if (rc || !keep)
            break;
    }
done:
    free(buf);
    close(fd);
    return NULL;
}

int main(int argc, char **argv)
{
    int never_listen = 0;
    if (argc < 2) {
        fprintf(stderr, "usage: http-example MODEL [--hostile] [--never-listen] [--die] [--spill]\n");
        return 2;
    }
    for (int i = 2; i < argc; i++) {
        if (!strcmp(argv[i], "--hostile"))
            hostile = 1;
        else if (!strcmp(argv[i], "--spill"))
            spill = 1;
        else if (!strcmp(argv[i], "--never-listen"))
            never_listen = 1;
        else if (!strcmp(argv[i], "--die")) {
            fprintf(stderr, "http-example: dying at start as asked\n");
            return 4;
        }
    }
    signal(SIGPIPE, SIG_IGN);
    load_model(argv[1]);
    fprintf(stderr, "http-example: model %s loaded once, %zu entries\n", argv[1], nwords);
    if (never_listen) {
        fprintf(stderr, "http-example: never listening, as asked\n");
        for (;;)
            pause();
    }

    const char *path = getenv("PIPELINES_HTTP_SOCKET");
    struct sockaddr_un addr;
    if (!path)
        path = "/run/pipelines/http.sock";
    if (strlen(path) >= sizeof addr.sun_path) {
        fprintf(stderr, "http-example: socket path too long\n");
        return 2;
    }
    memset(&addr, 0, sizeof addr);
    addr.sun_family = AF_UNIX;
    strcpy(addr.sun_path, path);
    unlink(path);
    int lfd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (lfd < 0 || bind(lfd, (struct sockaddr *)&addr, sizeof addr) != 0 || listen(lfd, 128) != 0) {
        fprintf(stderr, "http-example: cannot listen on %s: %s\n", path, strerror(errno));
        return 1;
    }
    for (;;) {
        int fd = accept4(lfd, NULL, NULL, SOCK_CLOEXEC);
        if (fd < 0) {
            if (errno == EINTR || errno == ECONNABORTED || errno == EMFILE)
                continue;
            fprintf(stderr, "http-example: accept failed: %s\n", strerror(errno));
            return 1;
        }
        pthread_t t;
        pthread_attr_t attr;
        pthread_attr_init(&attr);
        pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
        pthread_attr_setstacksize(&attr, 256 * 1024);
        if (pthread_create(&t, &attr, serve, (void *)(long)fd) != 0)
            close(fd);
        pthread_attr_destroy(&attr);
    }
}
