/* Prints the real and the effective user id: made setuid root, run as
   another user, it shows whether execve gave it root (the walk-through's
   step 5 compiles it with gcc -static). */
#include <stdio.h>
#include <unistd.h>

int main(void)
{
    printf("uid=%d euid=%d\n", (int)getuid(), (int)geteuid());
    return 0;
}
