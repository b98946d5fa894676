/* mkdeep DIR N: nests N folders named "d" under DIR, one inside the other, as a hostile
 * algorithm might in /out (a shell's cd stops near PATH_MAX; the kernel itself does not). */
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

int main(int argc, char **argv)
{
    long n, i;
    if (argc != 3 || (n = strtol(argv[2], NULL, 10)) <= 0) {
        fprintf(stderr, "usage: mkdeep DIR N\n");
        return 2;
    }
    if (chdir(argv[1]) != 0) {
        perror("chdir");
        return 1;
    }
    for (i = 0; i < n; i++) {
        if (mkdir("d", 0755) != 0 || chdir("d") != 0) {
            fprintf(stderr, "mkdeep: stopped at depth %ld: ", i);
            perror("");
            return 1;
        }
    }
    printf("%ld folders deep\n", n);
    return 0;
}
