/* xattr set PATH NAME VALUE | xattr get PATH NAME: sets or prints one extended attribute, as a
 * hostile algorithm might on its own /out (busybox has no setfattr). get prints nothing and
 * exits 1 when the attribute is not there. */
#include <stdio.h>
#include <string.h>
#include <sys/xattr.h>

int main(int argc, char **argv)
{
    char value[4096];
    ssize_t n;
    if (argc == 5 && !strcmp(argv[1], "set")) {
        if (setxattr(argv[2], argv[3], argv[4], strlen(argv[4]), 0) != 0) {
            perror("setxattr");
            return 1;
        }
        return 0;
    }
    if (argc == 4 && !strcmp(argv[1], "get")) {
        n = getxattr(argv[2], argv[3], value, sizeof value);
        if (n < 0)
            return 1;
        fwrite(value, 1, (size_t)n, stdout);
        return 0;
    }
    fprintf(stderr, "usage: xattr set PATH NAME VALUE | xattr get PATH NAME\n");
    return 2;
}
