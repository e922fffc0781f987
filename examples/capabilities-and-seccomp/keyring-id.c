/* Prints the serial number of the caller's user keyring, or the error:
   keyctl(KEYCTL_GET_KEYRING_ID, KEY_SPEC_USER_KEYRING, 0) reads it (and
   creates the keyring if this user has none yet, as any login does). busybox
   has no keyctl applet, so step 4 compiles this with gcc -static. */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

#define KEYCTL_GET_KEYRING_ID 0
#define KEY_SPEC_USER_KEYRING -4

int main(void)
{
    long id = syscall(SYS_keyctl, KEYCTL_GET_KEYRING_ID, KEY_SPEC_USER_KEYRING, 0);
    if (id < 0) {
        printf("keyctl: %s\n", strerror(errno));
        return 1;
    }
    printf("%ld\n", id);
    return 0;
}
