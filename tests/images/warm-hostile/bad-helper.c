/*
 * bad-helper SOCKET: for the tests, a fork helper that breaks the protocol. Mounted in place of
 * the engine's warm-helper (Docker:WarmHelper), it says hello like the real one, then answers
 * each request with bytes that are not a frame of the protocol (a length far beyond its limit).
 */
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

int main(int argc, char **argv)
{
    struct sockaddr_un addr;
    static const unsigned char hello[] = {17, 0, 0, 0, 'H', 'p', 'i', 'p', 'e', 'l', 'i', 'n', 'e', 's', '-', 'w', 'a', 'r', 'm', '/', '2'};
    static const char garbage[] = "\xff\xff\xff\x7fgarbage, not a frame";
    char buf[4096];
    if (argc != 2 || strlen(argv[1]) >= sizeof addr.sun_path)
        return 2;
    int lfd = socket(AF_UNIX, SOCK_STREAM, 0);
    memset(&addr, 0, sizeof addr);
    addr.sun_family = AF_UNIX;
    strcpy(addr.sun_path, argv[1]);
    unlink(argv[1]);
    if (bind(lfd, (struct sockaddr *)&addr, sizeof addr) != 0 || listen(lfd, 1) != 0)
        return 1;
    int fd = accept(lfd, NULL, NULL);
    if (fd < 0 || write(fd, hello, sizeof hello) != (ssize_t)sizeof hello)
        return 1;
    while (read(fd, buf, sizeof buf) > 0) {
        fprintf(stderr, "bad-helper: answering with garbage\n");
        if (write(fd, garbage, sizeof garbage - 1) < 0)
            return 1;
    }
    return 0;
}
