/* The two libc functions clang may call on its own (struct copies, zeroing) in a module
 * built with -nostdlib. Compiled with -fno-builtin, so these loops are not turned back into
 * calls to themselves. */
#include "runtime.h"

void *memset(void *dest, int byte, unsigned long n) {
    unsigned char *d = dest;
    for (unsigned long i = 0; i < n; i++) d[i] = (unsigned char)byte;
    return dest;
}

void *memcpy(void *dest, const void *src, unsigned long n) {
    unsigned char *d = dest;
    const unsigned char *s = src;
    for (unsigned long i = 0; i < n; i++) d[i] = s[i];
    return dest;
}
