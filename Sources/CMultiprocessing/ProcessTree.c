// A child dies with its parent, and takes everything it started with it.
//
// PR_SET_PDEATHSIG alone reaches only the child: a program it started (`posix_spawn` of
// /bin/sleep) has no parent-death signal of its own and would run on, re-parented to init. So
// the child asks for a signal it can catch, and its handler kills its descendants before the
// child itself. The same routine runs when the child's control channel hangs up (the parent's
// end closes only when the parent dies): the fallback where there is no PR_SET_PDEATHSIG, or
// where a task ignored or blocked the signal.
//
// Everything reachable from a signal handler is async-signal-safe: raw system calls, no malloc,
// no stdio, no opendir (getdents64 instead).
#define _GNU_SOURCE
#include "CMultiprocessing.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <string.h>
#include <sys/syscall.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#ifdef __linux__
#include <sys/prctl.h>
#include "ProcPath.h"
#endif

int mp_parent_death_signal(void) {
#ifdef __linux__
    // A real-time signal: neither Swift's runtime (SIGPROF, SIGUSR1/2 for its backtracer) nor
    // Dispatch uses one, and its default action still terminates a program that exec'd.
    return SIGRTMAX - 4;
#else
    return 0;
#endif
}

static int64_t monotonic_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static int mp_dying = 0;

#ifdef __linux__

// The state letter and parent of `pid`; 0, or -1 when it is gone.
static int mp_read_stat(pid_t pid, char *state, pid_t *parent) {
    char path[32];
    mp_proc_path(pid, "/stat", path);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return -1;
    // "pid (comm) S ppid ...": comm is at most 15 bytes, so the parent is in the first 64.
    char buf[96];
    ssize_t n = read(fd, buf, sizeof buf - 1);
    close(fd);
    if (n <= 0) return -1;
    buf[n] = 0;
    char *close_paren = NULL;
    for (ssize_t i = 0; i < n; i++)
        if (buf[i] == ')') close_paren = buf + i;  // The last one: comm may hold ')'.
    if (close_paren == NULL || close_paren + 4 >= buf + n) return -1;
    *state = close_paren[2];
    pid_t value = 0;
    for (char *p = close_paren + 4; *p >= '0' && *p <= '9'; p++) value = value * 10 + (*p - '0');
    *parent = value;
    return 0;
}

struct mp_dirent64 {
    uint64_t d_ino;
    int64_t d_off;
    unsigned short d_reclen;
    unsigned char d_type;
    char d_name[];
};

// Sends SIGKILL to every live child of this process; returns how many there were.
static int mp_kill_children(pid_t self) {
    int dir = open("/proc", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dir < 0) return 0;
    int killed = 0;
    _Alignas(8) char buf[4096];
    for (;;) {
        long n = syscall(SYS_getdents64, dir, buf, sizeof buf);
        if (n <= 0) break;
        for (long at = 0; at < n;) {
            struct mp_dirent64 *entry = (struct mp_dirent64 *)(buf + at);
            at += entry->d_reclen;
            pid_t pid = 0;
            const char *c = entry->d_name;
            if (*c < '1' || *c > '9') continue;
            for (; *c >= '0' && *c <= '9'; c++) pid = pid * 10 + (*c - '0');
            if (*c != 0 || pid == self) continue;
            char state;
            pid_t parent;
            if (mp_read_stat(pid, &state, &parent) != 0 || parent != self) continue;
            if (state == 'Z' || state == 'X') continue;
            kill(pid, SIGKILL);
            killed++;
        }
    }
    close(dir);
    return killed;
}
#endif

int mp_kill_child_processes(void) {
#ifdef __linux__
    return mp_kill_children(getpid());
#else
    return 0;
#endif
}

// Claims the end of the process for the calling thread: 1 if it is ours to do, 0 when another
// thread already does it (and will kill us). Signals are blocked first, so that the
// parent-death signal can never interrupt the thread that is already taking the tree down.
static int mp_claim_end(void) {
    sigset_t all;
    sigfillset(&all);
    pthread_sigmask(SIG_BLOCK, &all, NULL);
    return __atomic_exchange_n(&mp_dying, 1, __ATOMIC_SEQ_CST) == 0;
}

static void mp_kill_tree(void) __attribute__((noreturn));

void mp_kill_descendants_and_die(void) {
    // One thread does the work; another that gets here (the signal and the channel watchdog at
    // once) waits to be killed with the process.
    if (!mp_claim_end()) {
        for (;;) pause();
    }
    mp_kill_tree();
}

static void mp_kill_tree(void) {
    pid_t self = getpid();
#ifdef __linux__
    // Descendants orphaned from now on (a killed child's own children) come to us, so the next
    // pass finds them however far down they were, whatever group or session they moved to.
    prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0);
    int64_t deadline = monotonic_ns() + 2000000000LL;
    for (;;) {
        mp_kill_children(self);
        int status;
        pid_t r;
        while ((r = waitpid(-1, &status, WNOHANG | __WALL)) > 0) {
        }
        if (r < 0 && errno == ECHILD) break;  // No child left: no descendant left.
        // A process stuck in the kernel (D state) dies when it leaves; do not wait forever.
        if (monotonic_ns() > deadline) break;
        struct timespec pause_for = {0, 1000000};
        nanosleep(&pause_for, NULL);
    }
#endif
    // Members of our group that were orphaned before (`cmd &` from a shell that has exited),
    // then ourselves. Only a group we lead: never the parent's.
    if (getpgrp() == self) kill(0, SIGKILL);
    kill(self, SIGKILL);
    _exit(137);
}

#ifdef __linux__
static void mp_on_parent_death(int sig) {
    (void)sig;
    mp_kill_descendants_and_die();
}
#endif

static pid_t mp_parent = 0;

int mp_die_with_parent(pid_t parent) {
    mp_parent = parent;
#ifdef __linux__
    int sig = mp_parent_death_signal();
    struct sigaction action;
    memset(&action, 0, sizeof action);
    action.sa_handler = mp_on_parent_death;
    sigfillset(&action.sa_mask);
    if (sigaction(sig, &action, NULL) != 0) return -1;
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, sig);
    pthread_sigmask(SIG_UNBLOCK, &set, NULL);
    if (prctl(PR_SET_PDEATHSIG, sig, 0, 0, 0) != 0) return -1;
#endif
    // The parent may have died before the signal was armed.
    return getppid() == parent ? 0 : -1;
}

short mp_hang_up_events(void) {
#ifdef __linux__
    return POLLRDHUP;
#else
    return 0;  // POLLHUP is always reported.
#endif
}

int mp_hung_up(short revents) {
    if (revents & (POLLHUP | POLLERR)) return 1;
#ifdef __linux__
    if (revents & POLLRDHUP) return 1;
#endif
    return 0;
}

int mp_lifeline_open(int control_fd) {
    // A copy of our own, so that a task closing or reusing `control_fd` cannot fool the watch.
    return fcntl(control_fd, F_DUPFD_CLOEXEC, 3);
}

static void *mp_channel_watchdog(void *context) {
    int fd = (int)(intptr_t)context;
    // The one thread sure to take the parent-death signal: Dispatch's threads block it, and a
    // task may block it on its thread. Nothing else is delivered here.
    sigset_t all_but_death;
    sigfillset(&all_but_death);
#ifdef __linux__
    sigdelset(&all_but_death, mp_parent_death_signal());
#endif
    pthread_sigmask(SIG_SETMASK, &all_but_death, NULL);
    for (;;) {
        // No POLLIN: what the parent sends is for the runtime to read; only a hang-up wakes us.
        struct pollfd pfd = {fd, mp_hang_up_events(), 0};
        int r = poll(&pfd, 1, -1);
        if (r < 0 && errno == EINTR) continue;
        // Closed under us (a task that closes every descriptor): stop watching, kill nothing.
        if (r < 0 || (pfd.revents & POLLNVAL) != 0) return NULL;
        if (mp_hung_up(pfd.revents)) break;
    }
    mp_kill_descendants_and_die();
    return NULL;
}

int mp_watch_parent_channel(int fd) {
    int own = mp_lifeline_open(fd);
    if (own < 0) return errno;
    pthread_attr_t attributes;
    int rc = pthread_attr_init(&attributes);
    if (rc != 0) {
        close(own);
        return rc;
    }
    pthread_attr_setdetachstate(&attributes, PTHREAD_CREATE_DETACHED);
    pthread_attr_setstacksize(&attributes, 64 * 1024);
    pthread_t thread;
    rc = pthread_create(&thread, &attributes, mp_channel_watchdog, (void *)(intptr_t)own);
    pthread_attr_destroy(&attributes);
    if (rc != 0) {
        close(own);
    } else {
#ifdef __linux__
        pthread_setname_np(thread, "mp-lifeline");
#endif
    }
    return rc;
}

void mp_child_exit(int code, int control_fd) {
    // Never cut the tree-killing short from another thread: it ends the process itself.
    if (!mp_claim_end()) {
        for (;;) pause();
    }
    // A task that ended because its parent went away (its channels hung up) must not leave
    // what it started behind: the parent-death signal may come a moment after we are gone.
    int parent_gone = mp_parent != 0 && getppid() != mp_parent;
    struct pollfd pfd = {control_fd, 0, 0};
#ifdef __linux__
    pfd.events = POLLRDHUP;
#endif
    if (!parent_gone && control_fd >= 0 && poll(&pfd, 1, 0) > 0) {
        parent_gone = (pfd.revents & (POLLHUP | POLLERR)) != 0;
#ifdef __linux__
        parent_gone = parent_gone || (pfd.revents & POLLRDHUP) != 0;
#endif
    }
    if (parent_gone) mp_kill_tree();
    _exit(code);
}
