/* escape-probe: one escape attempt per subcommand, for tests/security.

   Each attempt makes the one system call it is named for and prints "ok"
   or the name of the errno the kernel answered (EPERM, EACCES, ...), so a
   test can tell "refused" from "tried and failed for another reason".
   Built static (gcc -static), so it runs in a busybox image with no C
   library of its own. Needs glibc >= 2.32 (strerrorname_np). */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ptrace.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <unistd.h>

static int report(long result) {
    if (result < 0) {
        printf("%s\n", strerrorname_np(errno));
        return 1;
    }
    printf("ok\n");
    return 0;
}

int main(int argc, char **argv) {
    if (argc < 2) {
        fprintf(stderr, "usage: escape-probe keyring|ptrace PID|module|timezone|rlimit|"
                        "open-write PATH\n");
        return 2;
    }
    const char *what = argv[1];
    if (!strcmp(what, "keyring"))        /* add a key to this process's own keyring */
        return report(syscall(SYS_add_key, "user", "escape-probe", "x", 1, -2 /* process */));
    if (!strcmp(what, "ptrace") && argc > 2) {
        pid_t pid = atoi(argv[2]);
        long r = ptrace(PTRACE_ATTACH, pid, 0, 0);
        if (r == 0) {
            waitpid(pid, NULL, __WALL);
            ptrace(PTRACE_DETACH, pid, 0, 0);
        }
        return report(r);
    }
    if (!strcmp(what, "module")) {       /* /dev/null is no module: the kernel can only refuse */
        int fd = open("/dev/null", O_RDONLY);
        return report(syscall(SYS_finit_module, fd, "", 0));
    }
    if (!strcmp(what, "timezone")) {     /* set the kernel's timezone to what it already is */
        struct timeval now;
        struct timezone tz;
        gettimeofday(&now, &tz);
        return report(settimeofday(NULL, &tz));
    }
    if (!strcmp(what, "rlimit")) {       /* lower the hard limit, then raise it again */
        struct rlimit limit;
        getrlimit(RLIMIT_NOFILE, &limit);
        limit.rlim_max = limit.rlim_cur;
        if (setrlimit(RLIMIT_NOFILE, &limit) < 0)
            return report(-1);
        limit.rlim_max += 1;
        return report(setrlimit(RLIMIT_NOFILE, &limit));
    }
    if (!strcmp(what, "open-write") && argc > 2)
        return report(open(argv[2], O_WRONLY));
    fprintf(stderr, "escape-probe: unknown attempt %s\n", what);
    return 2;
}
