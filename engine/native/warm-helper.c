/*
 * warm-helper: the first process (PID 1) of a fork-mode warm container.
 *
 *   warm-helper SOCKET
 *
 * Listens on the Unix socket SOCKET (in the control folder the engine binds at
 * /run/pipelines), accepts ONE connection from the engine, then removes the socket so that no
 * process it starts can reach the engine's channel or take its place. For each request on that
 * connection it starts the command (vfork and exec, no shell) in /out, streams its stdout and stderr
 * back in frames, and when the command exits, is timed out or cancelled by the engine, or the engine goes away,
 * kills every other process of the container (kill(-1, SIGKILL): as PID 1 of the PID namespace it
 * is the one process that survives), reaps them, empties /tmp, /dev/shm and /dev/mqueue and the
 * SysV IPC objects, and replies with how the command ended.
 *
 * The protocol (docs/functions.md, "The helper's protocol"): every frame is
 *   u32 length (little-endian, of what follows: 1..1 MiB), u8 type, payload.
 * helper -> engine: 'H' hello "pipelines-warm/2" (once, on accept); 'O' stdout bytes; 'E'
 *   stderr bytes; 'X' exit (40 bytes: u32 kind 0 exited / 1 signalled / 2 not started,
 *   i32 code or signal, u32 flags 1 timed out / 2 oom-killed / 4 cancelled / 8 not emptied, u32 0,
 *   u64 start_us (the vfork until the exec), u64 run_us, u64 cleanup_us); 'P' a protocol error
 *   text, then the helper exits.
 * engine -> helper: 'R' request (u32 argc, u32 envc, then argc + envc strings as u32 length +
 *   bytes, no NUL inside, env as NAME=VALUE); 'C' cancel the running request; 'T' the running
 *   request's time is up (killed and answered as timed out).
 * The helper keeps no clock of its own: the engine owns each request's deadline, because only
 * the engine knows how long the container was held frozen by the harvester, which does not
 * count (docs/harvesting.md, "Timeouts"; docs/decisions.md). A frozen helper still has the 'T'
 * waiting in its socket when it thaws.
 * Anything else, a short frame or a frame too long ends the helper: the engine treats the
 * container as broken and replaces it. Exits 0 when the engine closes the connection.
 *
 * What it opens once (docs/benchmarks.md, "The fork helper's cost per request"): /dev/null, the
 * folders it empties (/tmp, /dev/shm, /dev/mqueue: mount points, which a process without
 * CAP_SYS_ADMIN can neither move nor cover) and the memory cgroup's OOM count, so that a request
 * walks no path of the helper's; every fd of its own is close-on-exec.
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ipc.h>
#include <sys/msg.h>
#include <sys/prctl.h>
#include <sys/sem.h>
#include <sys/shm.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define MAX_FRAME (1u << 20)
#define CHUNK 32768
#define HELLO "pipelines-warm/2"

extern char **environ;

static int ctl = -1;   /* the engine's connection */
static int sigfd = -1; /* SIGCHLD */
static int nullfd = -1; /* /dev/null, a request's stdin */
static int tmpfd = -1, shmfd = -1, mqfd = -1; /* /tmp, /dev/shm, /dev/mqueue */
static int oomfd = -1;  /* the memory cgroup's OOM count (v1 memory.oom_control, v2 memory.events) */
static long oom_last = -1; /* that count after the last request (or at start): nothing runs between requests */

/* What the engine sent and a frame has not taken yet: a frame is read in one read() when it can be. */
static unsigned char inbuf[65536];
static size_t in_at, in_len;

static uint64_t now_us(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (uint64_t)t.tv_sec * 1000000u + (uint64_t)t.tv_nsec / 1000u;
}

static void put32(unsigned char *p, uint32_t v)
{
    p[0] = v & 0xff; p[1] = (v >> 8) & 0xff; p[2] = (v >> 16) & 0xff; p[3] = v >> 24;
}

static void put64(unsigned char *p, uint64_t v)
{
    put32(p, (uint32_t)v);
    put32(p + 4, (uint32_t)(v >> 32));
}

static uint32_t get32(const unsigned char *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static void write_all(int fd, const void *buf, size_t n)
{
    const char *p = buf;
    while (n > 0) {
        ssize_t w = write(fd, p, n);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            _exit(3); /* the engine went away: the container ends, and with it every process */
        p += w;
        n -= (size_t)w;
    }
}

/* One frame, in one write when it fits in a chunk's frame (every frame but a long protocol error). */
static void send_frame(char type, const void *payload, uint32_t n)
{
    static unsigned char frame[5 + CHUNK];
    put32(frame, n + 1);
    frame[4] = (unsigned char)type;
    if (n <= CHUNK) {
        if (n > 0)
            memcpy(frame + 5, payload, n);
        write_all(ctl, frame, 5 + (size_t)n);
        return;
    }
    write_all(ctl, frame, 5);
    write_all(ctl, payload, n);
}

static void fail(const char *why)
{
    send_frame('P', why, (uint32_t)strlen(why));
    _exit(2);
}

/*
 * Reads exactly n bytes of the engine's connection, what is buffered first; 0 at a clean end
 * before the first byte, 1 when read, exits otherwise. A short read fills the buffer with what
 * has come (the whole frame, usually); a long one goes straight to its destination.
 */
static int read_exact(void *buf, size_t n, int eof_ok)
{
    char *p = buf;
    size_t got = 0;
    while (got < n) {
        if (in_at < in_len) {
            size_t take = in_len - in_at < n - got ? in_len - in_at : n - got;
            memcpy(p + got, inbuf + in_at, take);
            in_at += take;
            got += take;
            continue;
        }
        int direct = n - got >= sizeof inbuf;
        ssize_t r = direct ? read(ctl, p + got, n - got) : read(ctl, inbuf, sizeof inbuf);
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0)
            _exit(3);
        if (r == 0) {
            if (got == 0 && eof_ok)
                return 0;
            _exit(3);
        }
        if (direct)
            got += (size_t)r;
        else
            in_at = 0, in_len = (size_t)r;
    }
    return 1;
}

/* One frame from the engine: its type, and its payload in *buf (malloc'd). 0 at a clean end. */
static int read_frame(unsigned char *type, unsigned char **buf, uint32_t *n)
{
    unsigned char head[4];
    if (!read_exact(head, 4, 1))
        return 0;
    uint32_t len = get32(head);
    if (len < 1 || len > MAX_FRAME)
        fail("frame length out of range");
    read_exact(type, 1, 0);
    *n = len - 1;
    *buf = malloc(*n + 1);
    if (!*buf)
        fail("out of memory");
    if (*n > 0)
        read_exact(*buf, *n, 0);
    (*buf)[*n] = 0;
    return 1;
}

/* --- cleaning between requests ------------------------------------------------ */

/*
 * Calls each(dfd, name, ctx) on every entry of an open folder but "." and "..", read from its
 * start with getdents64 into buf (the caller's own: a walk reads other folders from inside one
 * entry's call). -1 when the folder cannot be read or an each returned < 0, else 0.
 */
static int each_entry(int dfd, char *buf, size_t size, int (*each)(int dfd, const char *name, void *ctx), void *ctx)
{
    if (lseek(dfd, 0, SEEK_SET) != 0)
        return -1;
    for (;;) {
        ssize_t n = getdents64(dfd, buf, size);
        if (n < 0)
            return -1;
        if (n == 0)
            return 0;
        for (ssize_t at = 0; at < n;) {
            struct dirent64 *e = (struct dirent64 *)(buf + at);
            at += e->d_reclen;
            if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, ".."))
                continue;
            if (each(dfd, e->d_name, ctx) < 0)
                return -1;
        }
    }
}

struct first_folder {
    char *name;
    int found;
};

/* Removes one entry that is not a folder, or an empty folder; keeps the name of the first folder left. */
static int clear_one(int dfd, const char *name, void *ctx)
{
    struct first_folder *first = ctx;
    if (unlinkat(dfd, name, 0) == 0 || errno == ENOENT)
        return 0;
    if (errno != EISDIR && errno != EPERM)
        return -1;
    if (unlinkat(dfd, name, AT_REMOVEDIR) == 0 || errno == ENOENT)
        return 0;
    if (errno != ENOTEMPTY && errno != EEXIST)
        return -1;
    if (!first->found) {
        size_t len = strnlen(name, 255);
        memcpy(first->name, name, len);
        first->name[len] = 0;
        first->found = 1;
    }
    return 0;
}

/* The name of the first folder left in an open folder after removing every other entry, read from
 * its start; 1 found one (in name), 0 none left, -1 an entry that is not a folder could not go. */
static int clear_files(int dfd, char name[256])
{
    static char buf[8192] __attribute__((aligned(8)));
    struct first_folder first = { name, 0 };
    return each_entry(dfd, buf, sizeof buf, clear_one, &first) < 0 ? -1 : first.found;
}

/* A folder of an open folder, opened without following a link and given the mode 0700, so that
 * one a request made unreadable or unwritable (chmod 000, 500) can be read and emptied; -1 when not. */
static int open_own_folder(int parent, const char *name)
{
    int fd = openat(parent, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (fd < 0 && fchmodat(parent, name, 0700, 0) == 0)
        fd = openat(parent, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (fd >= 0 && fchmod(fd, 0700) != 0) {
        close(fd);
        fd = -1;
    }
    return fd;
}

/*
 * Removes a folder of an open folder with everything inside it, never following a link, without
 * recursion and with two descriptors of its own at most: it goes down into the first folder left
 * until one holds no folder, then back up by ".." (every other process of the container is gone,
 * so nothing moves a folder meanwhile) where that one, now empty, goes. A request may nest folders
 * deeper than the helper's stack or descriptors allow (tests: 15,000 in /tmp). A folder made
 * unreadable (chmod 000) is given back its mode first. 0 when it is gone, -1 when it is not.
 */
static int remove_tree(int parent, const char *top)
{
    char name[256];
    int depth = 0;
    int cur = open_own_folder(parent, top);
    if (cur < 0)
        return -1;
    for (;;) {
        int found = clear_files(cur, name);
        if (found < 0)
            break;
        if (found) {
            int child = open_own_folder(cur, name);
            if (child < 0)
                break;
            close(cur);
            cur = child;
            depth++;
            continue;
        }
        if (depth == 0) {
            close(cur);
            return unlinkat(parent, top, AT_REMOVEDIR) == 0 || errno == ENOENT ? 0 : -1;
        }
        /* empty: up to its parent, whose next read removes it */
        int up = openat(cur, "..", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        close(cur);
        if (up < 0)
            return -1;
        cur = up;
        depth--;
    }
    close(cur);
    return -1;
}

/* Removes one entry of an open folder, never following a link: a folder with what is inside it. 0 when it is gone. */
static int remove_entry(int dfd, const char *name)
{
    if (!strcmp(name, ".") || !strcmp(name, ".."))
        return 0;
    if (unlinkat(dfd, name, 0) == 0 || errno == ENOENT)
        return 0;
    struct stat st;
    if (fstatat(dfd, name, &st, AT_SYMLINK_NOFOLLOW) != 0 || !S_ISDIR(st.st_mode))
        return -1;
    return remove_tree(dfd, name);
}

/* Removes one entry of a kept folder; what cannot go is counted, and the walk goes on. */
static int remove_counted(int dfd, const char *name, void *ctx)
{
    if (remove_entry(dfd, name) != 0)
        *(int *)ctx = -1;
    return 0;
}

/*
 * Empties a folder the helper keeps open (fd -1: it could not be opened at start, as a missing
 * one was skipped before): read again from its start with getdents64 into a buffer of its own,
 * three system calls when it is empty, where opening it by path each time walked the path and
 * took eight. A folder in it goes by remove_tree. 0 when it is empty, -1 when something is left
 * (the engine then replaces the container: the next request must not see it).
 */
static int empty_kept(int dfd)
{
    static char buf[8192] __attribute__((aligned(8)));
    int left = 0;
    if (dfd < 0)
        return 0;
    return each_entry(dfd, buf, sizeof buf, remove_counted, &left) < 0 ? -1 : left;
}

static int open_folder(const char *path)
{
    return open(path, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
}

static void remove_ipc(void)
{
    /* Each kind's INFO says how many exist: with none (every request but a hostile one), no look at its slots. */
    struct shm_info si;
    int max = shmctl(0, SHM_INFO, (struct shmid_ds *)&si);
    if (max >= 0 && si.used_ids == 0)
        max = -1;
    for (int i = 0; i <= max; i++) {
        struct shmid_ds ds;
        int id = shmctl(i, SHM_STAT, &ds);
        if (id >= 0)
            shmctl(id, IPC_RMID, NULL);
    }
    struct seminfo sem;
    max = semctl(0, 0, SEM_INFO, &sem);
    if (max >= 0 && sem.semusz == 0)
        max = -1;
    for (int i = 0; i <= max; i++) {
        struct semid_ds ds;
        int id = semctl(i, 0, SEM_STAT, &ds);
        if (id >= 0)
            semctl(id, 0, IPC_RMID);
    }
    struct msginfo mi;
    max = msgctl(0, MSG_INFO, (struct msqid_ds *)&mi);
    if (max >= 0 && mi.msgpool == 0)
        max = -1;
    for (int i = 0; i <= max; i++) {
        struct msqid_ds ds;
        int id = msgctl(i, MSG_STAT, &ds);
        if (id >= 0)
            msgctl(id, IPC_RMID, NULL);
    }
}

/* Kills every process but this one and reaps them all, zombies included. */
static void kill_all(void)
{
    for (;;) {
        kill(-1, SIGKILL);
        pid_t p = waitpid(-1, NULL, 0);
        if (p < 0 && errno == ECHILD)
            return;
    }
}

/* The memory cgroup's file of OOM counts, opened once: v1 memory.oom_control, else v2 memory.events. */
static int open_oom(void)
{
    static const char *files[] = {"/sys/fs/cgroup/memory/memory.oom_control", "/sys/fs/cgroup/memory.events"};
    for (size_t i = 0; i < sizeof files / sizeof *files; i++) {
        int fd = open(files[i], O_RDONLY | O_CLOEXEC);
        if (fd >= 0)
            return fd;
    }
    return -1;
}

/* The memory cgroup's count of OOM kills, read again from the file's start (the kernel renders it anew); -1 unknown. */
static long oom_kills(void)
{
    char text[512];
    ssize_t n = oomfd < 0 ? -1 : pread(oomfd, text, sizeof text - 1, 0);
    if (n <= 0)
        return -1;
    text[n] = 0;
    for (char *line = text; line && *line; line = strchr(line, '\n') ? strchr(line, '\n') + 1 : NULL) {
        long count;
        if (sscanf(line, "oom_kill %ld", &count) == 1)
            return count;
    }
    return -1;
}

/* --- one request ------------------------------------------------------------ */

static int valid_strings(const unsigned char *p, uint32_t n, uint32_t count, char **out)
{
    uint32_t at = 0;
    for (uint32_t i = 0; i < count; i++) {
        if (n - at < 4)
            return 0;
        uint32_t len = get32(p + at);
        at += 4;
        if (len > n - at || memchr(p + at, 0, len))
            return 0;
        out[i] = strndup((const char *)p + at, len);
        if (!out[i])
            return 0;
        at += len;
    }
    return at == n;
}

/* The container's environment with the request's variables over it. */
static char **merged_env(char **extra, uint32_t n)
{
    size_t base = 0;
    while (environ[base])
        base++;
    char **env = calloc(base + n + 1, sizeof *env);
    size_t k = 0;
    if (!env)
        return NULL;
    for (size_t i = 0; i < base; i++) {
        size_t name = strcspn(environ[i], "=");
        int replaced = 0;
        for (uint32_t j = 0; j < n && !replaced; j++)
            replaced = strncmp(extra[j], environ[i], name) == 0 && extra[j][name] == '=';
        if (!replaced)
            env[k++] = environ[i];
    }
    for (uint32_t j = 0; j < n; j++)
        env[k++] = extra[j];
    return env;
}

/*
 * The vfork child's last words on stderr (the request's): formatted on its stack, with no
 * allocation in the memory it shares with the helper, then it exits with code.
 */
static void child_fails(const char *what, const char *command, int code)
{
    int e = errno;
    char msg[512];
    int n = command ? snprintf(msg, sizeof msg, "pipelines-warm: %s '%s': %s\n", what, command, strerror(e))
                    : snprintf(msg, sizeof msg, "pipelines-warm: %s: %s\n", what, strerror(e));
    if (n > 0)
        write(2, msg, (size_t)n < sizeof msg ? (size_t)n : sizeof msg - 1);
    _exit(code);
}

/*
 * Starts the command with vfork: the child borrows the helper's memory (no copy of its page
 * tables, no copy-on-write faults after) and the helper waits until it has exec'd or exited.
 * What the child changes is its own (signal mask, handlers, fds, working folder) but for
 * environ, which execvp searches PATH in: the caller puts the helper's own back when this
 * returns. A function of its own, so that nothing of the caller's frame is live across the vfork.
 */
__attribute__((noinline)) static pid_t start_child(char **argv, char **env, int out, int err)
{
    pid_t child = vfork();
    if (child == 0) {
        sigset_t none;
        sigemptyset(&none);
        sigprocmask(SIG_SETMASK, &none, NULL);
        signal(SIGPIPE, SIG_DFL);
        dup2(nullfd, 0);
        dup2(out, 1);
        dup2(err, 2);
        if (chdir("/out") != 0)
            child_fails("cannot enter /out", NULL, 126);
        environ = env;
        execvp(argv[0], argv);
        child_fails("cannot run", argv[0], errno == ENOENT ? 127 : 126);
    }
    return child;
}

static void run_request(const unsigned char *p, uint32_t n)
{
    if (n < 8)
        fail("request too short");
    uint32_t argc = get32(p), envc = get32(p + 4);
    if (argc < 1 || argc > 65536 || envc > 65536)
        fail("request counts out of range");
    char **argv = calloc((size_t)argc + 1, sizeof *argv), **extra = calloc((size_t)envc + 1, sizeof *extra);
    if (!argv || !extra)
        fail("out of memory");
    if (!valid_strings(p + 8, n - 8, argc + envc, argv))
        fail("malformed request strings");
    for (uint32_t j = 0; j < envc; j++) {
        extra[j] = argv[argc + j];
        argv[argc + j] = NULL;
        if (!strchr(extra[j], '=') || extra[j][0] == '=')
            fail("an environment entry is not NAME=VALUE");
    }

    /* Nothing runs in the container between requests: the count the last request left is this one's start. */
    long oom_before = oom_last;
    int out[2], err[2];
    /* Made before the vfork: the child shares the helper's memory until it execs, and must not allocate. */
    char **env = merged_env(extra, envc);
    if (!env)
        fail("out of memory");
    char **own_env = environ;
    uint64_t t0 = now_us();
    if (pipe2(out, O_CLOEXEC) != 0 || pipe2(err, O_CLOEXEC) != 0)
        fail("pipe failed");
    pid_t child = start_child(argv, env, out[1], err[1]);
    int start_errno = errno;
    environ = own_env;
    free(env);
    close(out[1]);
    close(err[1]);
    uint64_t t1 = now_us();
    uint32_t kind = 2, flags = 0;
    int32_t value = 0;
    if (child < 0) {
        kind = 2;
        value = start_errno;
        const char *msg = "pipelines-warm: cannot start the command: fork failed (the container's pids limit?)\n";
        send_frame('E', msg, (uint32_t)strlen(msg));
    }

    int open_out = 1, open_err = 1, done = child < 0;
    static char buf[CHUNK];
    while (!done || open_out || open_err) {
        struct pollfd fds[4] = {
            {ctl, POLLIN, 0}, {sigfd, POLLIN, 0}, {open_out ? out[0] : -1, POLLIN, 0}, {open_err ? err[0] : -1, POLLIN, 0},
        };
        /* a cancel or timeout already read into the buffer is waiting as surely as one in the socket */
        int pending = in_at < in_len;
        if (poll(fds, 4, pending ? 0 : -1) < 0 && errno != EINTR)
            fail("poll failed");
        if (pending)
            fds[0].revents |= POLLIN;
        if (fds[0].revents) {
            unsigned char type, *payload;
            uint32_t len;
            if (!read_frame(&type, &payload, &len)) {
                kill_all();
                _exit(0); /* the engine closed the connection: nothing will be asked again */
            }
            if ((type != 'C' && type != 'T') || len != 0)
                fail("only a cancel or a timeout may come while a request runs");
            free(payload);
            if (!done) {
                flags |= type == 'T' ? 1 : 4;
                done = 1;
                kill_all();
            }
        }
        if (fds[1].revents) {
            struct signalfd_siginfo si;
            if (read(sigfd, &si, sizeof si) < 0 && errno != EAGAIN)
                fail("signalfd read failed");
        }
        if (!done) {
            int status;
            pid_t p;
            while ((p = waitpid(-1, &status, WNOHANG)) > 0) {
                if (p == child) {
                    kind = WIFEXITED(status) ? 0 : 1;
                    value = WIFEXITED(status) ? WEXITSTATUS(status) : WTERMSIG(status);
                    done = 1;
                }
            }
            if (done)
                kill_all(); /* what the command left behind goes with it, as in a one-shot container */
        }
        for (int i = 0; i < 2; i++) {
            int *open_fd = i == 0 ? &open_out : &open_err;
            int fd = i == 0 ? out[0] : err[0];
            /* after the end every process is gone: read what is left without waiting */
            if (*open_fd && (fds[2 + i].revents || done)) {
                ssize_t r = read(fd, buf, sizeof buf);
                if (r > 0)
                    send_frame(i == 0 ? 'O' : 'E', buf, (uint32_t)r);
                else if (r == 0 || (errno != EINTR && errno != EAGAIN)) {
                    *open_fd = 0;
                    close(fd);
                }
            }
        }
    }
    if (flags & 5)
        kind = 1, value = SIGKILL;
    uint64_t t2 = now_us();

    /* what cannot be emptied is said (8): the engine replaces the container rather than serve on */
    if ((empty_kept(tmpfd) | empty_kept(shmfd) | empty_kept(mqfd)) != 0)
        flags |= 8;
    remove_ipc();
    long oom_after = oom_kills();
    oom_last = oom_after;
    if (oom_before >= 0 && oom_after > oom_before)
        flags |= 2;

    for (uint32_t i = 0; i < argc; i++)
        free(argv[i]);
    for (uint32_t j = 0; j < envc; j++)
        free(extra[j]);
    free(argv);
    free(extra);

    unsigned char x[40];
    memset(x, 0, sizeof x);
    put32(x, kind);
    put32(x + 4, (uint32_t)value);
    put32(x + 8, flags);
    put64(x + 16, t1 - t0);
    put64(x + 24, t2 - t1);
    put64(x + 32, now_us() - t2);
    send_frame('X', x, sizeof x);
}

int main(int argc, char **argv)
{
    struct sockaddr_un addr;
    if (argc != 2 || strlen(argv[1]) >= sizeof addr.sun_path) {
        fprintf(stderr, "usage: warm-helper SOCKET\n");
        return 2;
    }
    if (getpid() != 1) {
        /* kill(-1) is only safe as the first process of the container's own PID namespace */
        fprintf(stderr, "warm-helper: must be the container's first process (pid 1), not %d\n", (int)getpid());
        return 2;
    }
    /* A request's processes run as this helper's user: while the helper is dumpable they may
     * ptrace it or write its memory through /proc/1/mem (no capability needed for one's own
     * user), and so outlive the kill that ends a request, inside the helper that serves the next
     * one. Not dumpable, /proc/1 is closed to them (mem, maps, fd, environ) and ptrace refused;
     * a command exec'd by the helper is dumpable again, as any program is. */
    if (prctl(PR_SET_DUMPABLE, 0, 0, 0, 0) != 0) {
        fprintf(stderr, "warm-helper: cannot make itself undumpable: %s\n", strerror(errno));
        return 1;
    }
    signal(SIGPIPE, SIG_IGN);
    sigset_t chld;
    sigemptyset(&chld);
    sigaddset(&chld, SIGCHLD);
    sigprocmask(SIG_BLOCK, &chld, NULL);
    sigfd = signalfd(-1, &chld, SFD_NONBLOCK | SFD_CLOEXEC);

    int lfd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    memset(&addr, 0, sizeof addr);
    addr.sun_family = AF_UNIX;
    strcpy(addr.sun_path, argv[1]);
    unlink(argv[1]);
    if (lfd < 0 || sigfd < 0 || bind(lfd, (struct sockaddr *)&addr, sizeof addr) != 0 || listen(lfd, 1) != 0) {
        fprintf(stderr, "warm-helper: cannot listen on %s: %s\n", argv[1], strerror(errno));
        return 1;
    }
    nullfd = open("/dev/null", O_RDONLY | O_CLOEXEC);
    if (nullfd < 0) {
        fprintf(stderr, "warm-helper: cannot open /dev/null: %s\n", strerror(errno));
        return 1;
    }
    tmpfd = open_folder("/tmp");
    shmfd = open_folder("/dev/shm");
    mqfd = open_folder("/dev/mqueue");
    oomfd = open_oom();
    oom_last = oom_kills();

    ctl = accept4(lfd, NULL, NULL, SOCK_CLOEXEC);
    if (ctl < 0) {
        fprintf(stderr, "warm-helper: accept failed: %s\n", strerror(errno));
        return 1;
    }
    /* One engine, one channel: nothing a request starts can connect or listen in its place. */
    close(lfd);
    unlink(argv[1]);
    send_frame('H', HELLO, (uint32_t)strlen(HELLO));

    for (;;) {
        unsigned char type, *payload;
        uint32_t n;
        if (!read_frame(&type, &payload, &n))
            return 0;
        if (type == 'R')
            run_request(payload, n);
        else if (type != 'C' && type != 'T') /* a cancel or timeout that crossed the exit frame is harmless */
            fail("unknown frame type");
        free(payload);
    }
}
