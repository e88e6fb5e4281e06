// Shared memory and process-shared futexes: the calls Swift cannot make directly (variadic
// `syscall`, `memfd_create`, which Swift's Glibc module does not declare, thread-local caches).
#define _GNU_SOURCE
#include "CMultiprocessing.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#ifdef __linux__
#include <linux/futex.h>
#endif
#if defined(__APPLE__)
#include <os/os_sync_wait_on_address.h>
#endif

int mp_memfd_create(const char *debug_name) {
#ifdef __linux__
    return (int)syscall(SYS_memfd_create, debug_name, MFD_CLOEXEC);
#else
    // No memfd: an immediately unlinked POSIX object gives the same lifetime.
    char name[64];
    snprintf(name, sizeof name, "/mp-anon-%d-%ld", (int)getpid(), (long)random());
    int fd = shm_open(name, O_RDWR | O_CREAT | O_EXCL, 0600);
    if (fd >= 0) {
        shm_unlink(name);
        fcntl(fd, F_SETFD, FD_CLOEXEC);
    }
    (void)debug_name;
    return fd;
#endif
}

#if defined(__APPLE__)
static int64_t monotonic_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}
#endif

int mp_futex_wait(uint32_t *address, uint32_t expected, int64_t deadline_ns) {
#ifdef __linux__
    // FUTEX_WAIT_BITSET takes an absolute CLOCK_MONOTONIC deadline: retries do not drift.
    // Not FUTEX_PRIVATE_FLAG: the word is shared between processes.
    struct timespec ts, *tsp = NULL;
    if (deadline_ns >= 0) {
        ts.tv_sec = deadline_ns / 1000000000;
        ts.tv_nsec = deadline_ns % 1000000000;
        tsp = &ts;
    }
    long rc = syscall(SYS_futex, address, FUTEX_WAIT_BITSET, expected, tsp, NULL,
                      FUTEX_BITSET_MATCH_ANY);
    return rc == 0 ? 0 : errno;
#elif defined(__APPLE__)
    int rc;
    if (deadline_ns < 0) {
        rc = os_sync_wait_on_address(address, expected, 4, OS_SYNC_WAIT_ON_ADDRESS_SHARED);
    } else {
        int64_t now = monotonic_ns();
        if (deadline_ns <= now) return ETIMEDOUT;
        rc = os_sync_wait_on_address_with_timeout(address, expected, 4,
                                                  OS_SYNC_WAIT_ON_ADDRESS_SHARED,
                                                  OS_CLOCK_MACH_ABSOLUTE_TIME,
                                                  (uint64_t)(deadline_ns - now));
    }
    if (rc >= 0) return 0;
    return errno == ETIMEDOUT ? ETIMEDOUT : (errno == EINTR ? EINTR : 0);
#else
    (void)address; (void)expected; (void)deadline_ns;
    usleep(1000);
    return 0;
#endif
}

int mp_futex_wake(uint32_t *address, int count) {
#ifdef __linux__
    long rc = syscall(SYS_futex, address, FUTEX_WAKE, count, NULL, NULL, 0);
    return rc < 0 ? 0 : (int)rc;
#elif defined(__APPLE__)
    if (count == 1) {
        return os_sync_wake_by_address_any(address, 4, OS_SYNC_WAKE_BY_ADDRESS_SHARED) == 0;
    }
    return os_sync_wake_by_address_all(address, 4, OS_SYNC_WAKE_BY_ADDRESS_SHARED) == 0;
#else
    (void)address; (void)count;
    return 0;
#endif
}

static __thread int32_t cached_tid = 0;
static int32_t cached_pid = 0;
static pthread_once_t tid_fork_once = PTHREAD_ONCE_INIT;

static void reset_ids_after_fork(void) {
    cached_tid = 0;
    __atomic_store_n(&cached_pid, 0, __ATOMIC_RELAXED);
}
static void register_tid_fork_handler(void) {
    pthread_atfork(NULL, NULL, reset_ids_after_fork);
}

int32_t mp_current_pid(void) {
    int32_t pid = __atomic_load_n(&cached_pid, __ATOMIC_RELAXED);
    if (pid == 0) {
        pthread_once(&tid_fork_once, register_tid_fork_handler);
        pid = (int32_t)getpid();
        __atomic_store_n(&cached_pid, pid, __ATOMIC_RELAXED);
    }
    return pid;
}

int32_t mp_current_tid(void) {
    if (cached_tid == 0) {
        pthread_once(&tid_fork_once, register_tid_fork_handler);
#ifdef __linux__
        cached_tid = (int32_t)syscall(SYS_gettid);
#else
        // Darwin has no process-wide thread ids that `kill` accepts: owners are processes.
        cached_tid = (int32_t)getpid();
#endif
    }
    return cached_tid;
}

void mp_spin_pause(void) {
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#elif defined(__aarch64__)
    __asm__ __volatile__("yield");
#endif
}
