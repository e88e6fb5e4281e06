// Internal to the C target: shared by ProcessTree.c and Sandbox.c.
#ifndef MP_PROC_PATH_H
#define MP_PROC_PATH_H

#include <string.h>
#include <sys/types.h>

// "/proc/<pid><suffix>" into `path` (room for 20 bytes plus the suffix), without snprintf, which
// is not async-signal-safe.
static inline void mp_proc_path(pid_t pid, const char *suffix, char *path) {
    char digits[12];
    int n = 0;
    unsigned value = (unsigned)pid;
    do {
        digits[n++] = (char)('0' + value % 10);
        value /= 10;
    } while (value != 0 && n < (int)sizeof digits);
    memcpy(path, "/proc/", 6);
    int at = 6;
    while (n > 0) path[at++] = digits[--n];
    memcpy(path + at, suffix, strlen(suffix) + 1);
}

#endif
