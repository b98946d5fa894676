/* xattr set PATH NAME VALUE | xattr get PATH NAME | xattr flags PATH [HEX]: sets or prints one
 * extended attribute, or the inode flags (chattr's: FS_IOC_GETFLAGS/SETFLAGS), as a hostile
 * algorithm might on its own /out (busybox has neither setfattr nor chattr). get prints nothing
 * and exits 1 when the attribute is not there; flags prints them in hex. */
#include <fcntl.h>
#include <linux/fs.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/xattr.h>
#include <unistd.h>

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
    if ((argc == 3 || argc == 4) && !strcmp(argv[1], "flags")) {
        int fd = open(argv[2], O_RDONLY | O_NONBLOCK);
        int flags = 0;
        if (fd < 0 || ioctl(fd, FS_IOC_GETFLAGS, &flags) != 0) {
            perror("flags");
            return 1;
        }
        if (argc == 4) {
            flags |= (int)strtol(argv[3], NULL, 16);
            if (ioctl(fd, FS_IOC_SETFLAGS, &flags) != 0) {
                perror("flags");
                return 1;
            }
        }
        printf("%x\n", flags);
        return 0;
    }
    fprintf(stderr, "usage: xattr set PATH NAME VALUE | xattr get PATH NAME | xattr flags PATH [HEX]\n");
    return 2;
}
