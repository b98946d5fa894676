/*
 * fastq-stats: per-file statistics for FASTQ files (plain or gzip).
 *
 *   fastq-stats --out FILE INPUT...
 *
 * Writes one TSV line per input, no header:
 *   file  reads  bases  gc  mean_quality
 * file has a leading "/in/" stripped, gc is (G+C)/bases ("%.6f"), and
 * mean_quality is the mean Phred+33 score over all bases ("%.4f"); both are
 * 0 for a file with no bases.
 *
 * Input is checked strictly (4-line records, '@' header, '+' separator,
 * sequence of ACGTN only, quality of the same length in '!'..'~'). On the
 * first problem it prints "fastq-stats: <file>:<line>: <problem>" to stderr
 * (file as in the TSV, "/in/" stripped), writes no output file and exits 2.
 * Lines may be of any length.
 *
 * Exit codes: 0 ok, 1 usage or output error, 2 bad or unreadable input.
 *
 * Build: gcc -O2 -static -o fastq-stats fastq-stats.c -lz
 */
#include <errno.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <zlib.h>

#define PROG "fastq-stats"
#define CHUNK (128 * 1024)

struct stats {
    const char *name;          /* input path with "/in/" stripped */
    uint64_t reads, bases, gc, qual_sum;
};

/* Buffered line reader over gzread: handles lines of any length and
 * embedded NUL bytes (which then fail validation instead of silently
 * shortening a line, as gzgets would). */
struct reader {
    gzFile gz;
    const char *path;          /* as given, for opening */
    const char *name;          /* "/in/" stripped, for messages */
    unsigned char buf[CHUNK];
    size_t pos, len;
    int eof;
    char *line;                /* current line, without '\n' (and '\r') */
    size_t line_len, line_cap;
    uint64_t lineno;
};

static void die_input(const char *path, uint64_t line, const char *fmt, ...)
{
    va_list ap;
    if (line)
        fprintf(stderr, PROG ": %s:%llu: ", path, (unsigned long long)line);
    else
        fprintf(stderr, PROG ": %s: ", path);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
    exit(2);
}

static void *xrealloc(void *p, size_t n)
{
    void *q = realloc(p, n);
    if (!q) {
        fprintf(stderr, PROG ": out of memory\n");
        exit(1);
    }
    return q;
}

static void line_append(struct reader *r, const unsigned char *s, size_t n)
{
    if (r->line_len + n + 1 > r->line_cap) {
        size_t cap = r->line_cap ? r->line_cap : 256;
        while (cap < r->line_len + n + 1) {
            if (cap > SIZE_MAX / 2) {
                fprintf(stderr, PROG ": line too long\n");
                exit(1);
            }
            cap *= 2;
        }
        r->line = xrealloc(r->line, cap);
        r->line_cap = cap;
    }
    memcpy(r->line + r->line_len, s, n);
    r->line_len += n;
    r->line[r->line_len] = '\0';
}

/* gzerror() prefixes the message with the path: drop that. */
static const char *gz_msg(struct reader *r, int *errnum)
{
    const char *msg = gzerror(r->gz, errnum);
    size_t n = strlen(r->path);
    if (*errnum == Z_ERRNO)
        return strerror(errno);
    if (strncmp(msg, r->path, n) == 0 && strncmp(msg + n, ": ", 2) == 0)
        msg += n + 2;
    return msg;
}

static int fill(struct reader *r)
{
    int n, errnum;
    const char *msg;
    if (r->eof)
        return 0;
    errno = 0;
    n = gzread(r->gz, r->buf, sizeof r->buf);
    if (n < 0) {
        msg = gz_msg(r, &errnum);
        die_input(r->name, r->lineno + 1, "read error: %s", msg);
    }
    if (n == 0) {
        /* gzread returns 0 both at a clean end and, for a truncated gzip
         * stream, with an error set: tell the two apart. */
        msg = gz_msg(r, &errnum);
        if (errnum != Z_OK && errnum != Z_STREAM_END)
            die_input(r->name, r->lineno + 1, "read error: %s", msg);
        r->eof = 1;
        return 0;
    }
    r->pos = 0;
    r->len = (size_t)n;
    return 1;
}

/* Reads the next line into r->line. Returns 0 at end of file. */
static int next_line(struct reader *r)
{
    int got = 0;
    r->line_len = 0;
    if (r->line)
        r->line[0] = '\0';
    for (;;) {
        if (r->pos == r->len && !fill(r))
            break;
        unsigned char *start = r->buf + r->pos;
        unsigned char *nl = memchr(start, '\n', r->len - r->pos);
        got = 1;
        if (nl) {
            line_append(r, start, (size_t)(nl - start));
            r->pos += (size_t)(nl - start) + 1;
            break;
        }
        line_append(r, start, r->len - r->pos);
        r->pos = r->len;
    }
    if (!got)
        return 0;
    if (r->line_len && r->line[r->line_len - 1] == '\r')
        r->line[--r->line_len] = '\0';
    r->lineno++;
    return 1;
}

/* Scans one file into *st; errors name the file as the TSV does (st->name). */
static void scan_file(const char *path, struct stats *st)
{
    static struct reader r;    /* large buffer: keep it off the stack */
    uint64_t rec_line, blank_line = 0;
    char *name = NULL;
    size_t name_cap = 0, seq_len;

    r.path = path;
    r.name = st->name;
    r.pos = r.len = 0;
    r.eof = 0;
    r.lineno = 0;
    errno = 0;
    r.gz = gzopen(path, "rb");
    if (!r.gz)
        die_input(st->name, 0, "cannot open: %s",
                  errno ? strerror(errno) : "out of memory");
    gzbuffer(r.gz, CHUNK);

    while (next_line(&r)) {
        /* header */
        if (r.line_len == 0) {
            /* blank lines are tolerated only at the very end of the file */
            if (!blank_line)
                blank_line = r.lineno;
            continue;
        }
        if (blank_line)
            die_input(st->name, blank_line, "empty line between records");
        rec_line = r.lineno;
        if (r.line[0] != '@')
            die_input(st->name, rec_line,
                      "expected a record header starting with '@'");
        if (r.line_len > name_cap) {
            name_cap = r.line_len;
            name = xrealloc(name, name_cap + 1);
        }
        memcpy(name, r.line, r.line_len + 1);

        /* sequence */
        if (!next_line(&r))
            die_input(st->name, rec_line,
                      "truncated record: missing sequence line");
        seq_len = r.line_len;
        for (size_t i = 0; i < seq_len; i++) {
            switch (r.line[i]) {
            case 'G': case 'C':
                st->gc++;
                break;
            case 'A': case 'T': case 'N':
                break;
            default: {
                unsigned char c = (unsigned char)r.line[i];
                if (c >= 0x21 && c < 0x7f)
                    die_input(st->name, r.lineno,
                              "invalid base '%c' at column %zu "
                              "(only A, C, G, T, N allowed)", c, i + 1);
                die_input(st->name, r.lineno,
                          "invalid base byte 0x%02x at column %zu "
                          "(only A, C, G, T, N allowed)", c, i + 1);
            }
            }
        }

        /* separator */
        if (!next_line(&r))
            die_input(st->name, rec_line,
                      "truncated record: missing '+' line");
        if (r.line[0] != '+')
            die_input(st->name, r.lineno,
                      "expected '+' separator line");
        if (r.line_len > 1 &&
            (r.line_len != strlen(name) || strcmp(r.line + 1, name + 1) != 0))
            die_input(st->name, r.lineno,
                      "'+' line repeats a different name than the header");

        /* quality */
        if (!next_line(&r))
            die_input(st->name, rec_line,
                      "truncated record: missing quality line");
        if (r.line_len != seq_len)
            die_input(st->name, r.lineno,
                      "quality length %zu differs from sequence length %zu",
                      r.line_len, seq_len);
        for (size_t i = 0; i < seq_len; i++) {
            unsigned char c = (unsigned char)r.line[i];
            if (c < '!' || c > '~')
                die_input(st->name, r.lineno,
                          "invalid quality byte 0x%02x at column %zu", c, i + 1);
            st->qual_sum += (uint64_t)(c - 33);
        }
        st->reads++;
        st->bases += seq_len;
    }
    gzclose(r.gz);
    free(name);
}

static void usage(FILE *f)
{
    fprintf(f,
            "usage: " PROG " --out FILE INPUT...\n"
            "Writes one TSV line per FASTQ input (plain or gzip), no header:\n"
            "  file reads bases gc mean_quality\n"
            "FILE '-' writes to standard output.\n");
}

int main(int argc, char **argv)
{
    const char *out = NULL;
    int first = 0, n;
    struct stats *st;

    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--out") == 0 || strcmp(argv[i], "-o") == 0) {
            if (i + 1 >= argc) {
                fprintf(stderr, PROG ": --out needs a file name\n");
                usage(stderr);
                return 1;
            }
            out = argv[++i];
        } else if (strncmp(argv[i], "--out=", 6) == 0) {
            out = argv[i] + 6;
        } else if (strcmp(argv[i], "--help") == 0 ||
                   strcmp(argv[i], "-h") == 0) {
            usage(stdout);
            return 0;
        } else if (strcmp(argv[i], "--") == 0) {
            first = i + 1;
            break;
        } else if (argv[i][0] == '-' && argv[i][1] != '\0') {
            fprintf(stderr, PROG ": unknown option %s\n", argv[i]);
            usage(stderr);
            return 1;
        } else {
            first = i;
            break;
        }
    }
    /* options after the first input are not supported: catch a
     * misplaced --out rather than treating it as a file name */
    for (int i = first; first && i < argc; i++) {
        if (strcmp(argv[i], "--out") == 0 || strncmp(argv[i], "--out=", 6) == 0) {
            fprintf(stderr, PROG ": options must come before the inputs\n");
            usage(stderr);
            return 1;
        }
    }
    if (!out || !*out || first == 0 || first >= argc) {
        fprintf(stderr, PROG ": %s\n",
                !out || !*out ? "--out FILE is required"
                              : "at least one INPUT is required");
        usage(stderr);
        return 1;
    }

    n = argc - first;
    st = calloc((size_t)n, sizeof *st);
    if (!st) {
        fprintf(stderr, PROG ": out of memory\n");
        return 1;
    }
    /* Scan everything first so that nothing is written on bad input. */
    for (int i = 0; i < n; i++) {
        const char *path = argv[first + i];
        st[i].name = strncmp(path, "/in/", 4) == 0 ? path + 4 : path;
        if (strpbrk(st[i].name, "\t\n\r"))
            die_input(st[i].name, 0, "file name contains a tab or newline");
        scan_file(path, &st[i]);
    }

    int to_stdout = strcmp(out, "-") == 0;
    FILE *f = to_stdout ? stdout : fopen(out, "w");
    if (!f) {
        fprintf(stderr, PROG ": cannot write %s: %s\n", out, strerror(errno));
        return 1;
    }
    for (int i = 0; i < n; i++) {
        double b = (double)st[i].bases;
        fprintf(f, "%s\t%llu\t%llu\t%.6f\t%.4f\n", st[i].name,
                (unsigned long long)st[i].reads,
                (unsigned long long)st[i].bases,
                st[i].bases ? (double)st[i].gc / b : 0.0,
                st[i].bases ? (double)st[i].qual_sum / b : 0.0);
    }
    int werr = ferror(f);
    werr |= (to_stdout ? fflush(f) : fclose(f)) != 0;
    if (werr) {
        fprintf(stderr, PROG ": cannot write %s: %s\n", out, strerror(errno));
        if (!to_stdout)
            unlink(out);
        return 1;
    }
    free(st);
    return 0;
}
