// The parts of swift-multiprocessing that Swift cannot reach: a constructor that runs before
// `main`, a fork server that must stay single-threaded, SCM_RIGHTS control messages, prctl.
#define _GNU_SOURCE
#include "CMultiprocessing.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <spawn.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>
#ifdef __linux__
#include <sched.h>
#include <sys/epoll.h>
#include <sys/prctl.h>
#endif

// Defined in Swift (`@_cdecl`). Weak, so a binary that links this target without the Swift
// module still loads.
extern void swift_multiprocessing_child_entry(const char *spec) __attribute__((weak));

// Runs before `main`: a copy of the binary started as a child must never run the parent's
// `main`. Swift's own image constructor (swiftrt.o) is linked first, so type metadata is
// registered by the time this runs.
__attribute__((constructor)) static void mp_child_constructor(void) {
    const char *spec = getenv(MP_CHILD_ENV);
    if (spec == NULL || swift_multiprocessing_child_entry == NULL) return;
    char copy[128];
    strncpy(copy, spec, sizeof copy - 1);
    copy[sizeof copy - 1] = 0;
    unsetenv(MP_CHILD_ENV);
    swift_multiprocessing_child_entry(copy);
}


int mp_spawn(const char *path, char *const argv[], char *const envp[], const int *keep_fds,
             int keep_count, int stderr_fd, const char *cwd, pid_t *out_pid) {
    posix_spawn_file_actions_t actions;
    posix_spawnattr_t attr;
    int rc = posix_spawn_file_actions_init(&actions);
    if (rc != 0) return rc;
    rc = posix_spawnattr_init(&attr);
    if (rc != 0) {
        posix_spawn_file_actions_destroy(&actions);
        return rc;
    }
    // Own process group, so terminate/kill reach the child's children too. Default signal
    // dispositions and an empty mask, whatever the parent had.
    sigset_t all, none;
    sigfillset(&all);
    sigemptyset(&none);
    posix_spawnattr_setsigdefault(&attr, &all);
    posix_spawnattr_setsigmask(&attr, &none);
    posix_spawnattr_setpgroup(&attr, 0);
    short flags = POSIX_SPAWN_SETPGROUP | POSIX_SPAWN_SETSIGDEF | POSIX_SPAWN_SETSIGMASK;
#ifdef POSIX_SPAWN_USEVFORK
    flags |= POSIX_SPAWN_USEVFORK;
#endif
    posix_spawnattr_setflags(&attr, flags);

    if (stderr_fd >= 0) posix_spawn_file_actions_adddup2(&actions, stderr_fd, 2);
    // Two phases so that moving the kept descriptors to 3, 4, ... never clobbers one that is
    // still to be moved: first above every kept fd, then down to their final numbers.
    int base = stderr_fd + 1;
    for (int i = 0; i < keep_count; i++)
        if (keep_fds[i] + 1 > base) base = keep_fds[i] + 1;
    if (base < 3 + keep_count) base = 3 + keep_count;
    for (int i = 0; i < keep_count; i++) posix_spawn_file_actions_adddup2(&actions, keep_fds[i], base + i);
    for (int i = 0; i < keep_count; i++) posix_spawn_file_actions_adddup2(&actions, base + i, 3 + i);
#if defined(__GLIBC__) && (__GLIBC__ > 2 || (__GLIBC__ == 2 && __GLIBC_MINOR__ >= 34))
    posix_spawn_file_actions_addclosefrom_np(&actions, 3 + keep_count);
#else
    for (int i = 0; i < keep_count; i++) posix_spawn_file_actions_addclose(&actions, base + i);
#endif
#if defined(__GLIBC__) && (__GLIBC__ > 2 || (__GLIBC__ == 2 && __GLIBC_MINOR__ >= 29))
    if (cwd != NULL) posix_spawn_file_actions_addchdir_np(&actions, cwd);
#else
    if (cwd != NULL) {
        posix_spawn_file_actions_destroy(&actions);
        posix_spawnattr_destroy(&attr);
        return ENOSYS;
    }
#endif
    rc = posix_spawn(out_pid, path, &actions, &attr, argv, envp);
    posix_spawn_file_actions_destroy(&actions);
    posix_spawnattr_destroy(&attr);
    return rc;
}

ssize_t mp_sendmsg_fds(int sock, const void *buf, size_t len, const int *fds, int fd_count,
                       int flags) {
    struct iovec iov = {.iov_base = (void *)buf, .iov_len = len};
    struct msghdr msg = {0};
    msg.msg_iov = &iov;
    msg.msg_iovlen = 1;
    union {
        struct cmsghdr align;
        char bytes[CMSG_SPACE(sizeof(int) * MP_SCM_MAX_FD)];
    } control_storage;
    char *control = control_storage.bytes;
    if (fd_count < 0 || fd_count > MP_SCM_MAX_FD) {
        errno = EINVAL;
        return -1;
    }
    if (fd_count > 0) {
        memset(control, 0, sizeof control_storage);
        msg.msg_control = control;
        msg.msg_controllen = CMSG_SPACE(sizeof(int) * fd_count);
        struct cmsghdr *cmsg = CMSG_FIRSTHDR(&msg);
        cmsg->cmsg_level = SOL_SOCKET;
        cmsg->cmsg_type = SCM_RIGHTS;
        cmsg->cmsg_len = CMSG_LEN(sizeof(int) * fd_count);
        memcpy(CMSG_DATA(cmsg), fds, sizeof(int) * fd_count);
    }
#ifdef MSG_NOSIGNAL
    flags |= MSG_NOSIGNAL;
#endif
    ssize_t n;
    do {
        n = sendmsg(sock, &msg, flags);
    } while (n < 0 && errno == EINTR);
    return n;
}

ssize_t mp_recvmsg_fds(int sock, void *buf, size_t len, int *fds, int max_fds, int *fd_count,
                       int flags, int *notes) {
    struct iovec iov = {.iov_base = buf, .iov_len = len};
    struct msghdr msg = {0};
    // Room for all the kernel passes in one message, so that MSG_CTRUNC only ever means
    // descriptors the kernel could not install here (the descriptor limit), and a peer that
    // sends more than the caller accepts is noticed instead of silently cut short.
    union {
        struct cmsghdr align;
        char bytes[CMSG_SPACE(sizeof(int) * MP_SCM_MAX_FD)];
    } control;
    msg.msg_iov = &iov;
    msg.msg_iovlen = 1;
    msg.msg_control = control.bytes;
    msg.msg_controllen = sizeof control.bytes;
    *fd_count = 0;
    if (notes != NULL) *notes = 0;
#ifdef MSG_CMSG_CLOEXEC
    flags |= MSG_CMSG_CLOEXEC;
#endif
    ssize_t n;
    do {
        n = recvmsg(sock, &msg, flags);
    } while (n < 0 && errno == EINTR);
    if (n < 0) return n;
    int excess = 0;
    for (struct cmsghdr *c = CMSG_FIRSTHDR(&msg); c != NULL; c = CMSG_NXTHDR(&msg, c)) {
        if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS) continue;
        int count = (int)((c->cmsg_len - CMSG_LEN(0)) / sizeof(int));
        int *data = (int *)CMSG_DATA(c);
        for (int i = 0; i < count; i++) {
            int fd;
            memcpy(&fd, data + i, sizeof fd);
            // Never hold a descriptor the caller has no room for.
            if (*fd_count < max_fds) {
                fds[(*fd_count)++] = fd;
            } else {
                close(fd);
                excess = 1;
            }
        }
    }
    if (notes != NULL) {
        if (excess) *notes |= MP_FDS_EXCESS;
        if (msg.msg_flags & MSG_CTRUNC) *notes |= MP_FDS_TRUNCATED;
    }
    return n;
}


int mp_set_parent_death_signal(int sig) {
#ifdef __linux__
    return prctl(PR_SET_PDEATHSIG, sig, 0, 0, 0);
#else
    (void)sig;
    return 0;
#endif
}

int mp_pidfd_open(pid_t pid) {
#if defined(__linux__) && defined(SYS_pidfd_open)
    return (int)syscall(SYS_pidfd_open, pid, 0);
#else
    (void)pid;
    errno = ENOSYS;
    return -1;
#endif
}

int mp_pipe(int fds[2]) {
#ifdef __linux__
    if (pipe2(fds, O_CLOEXEC) != 0) return errno;
#else
    if (pipe(fds) != 0) return errno;
    fcntl(fds[0], F_SETFD, FD_CLOEXEC);
    fcntl(fds[1], F_SETFD, FD_CLOEXEC);
#endif
    return 0;
}

pid_t mp_fork(void) { return fork(); }

// libdispatch's run-loop hooks (what CoreFoundation uses to drain the main queue on Linux).
extern int _dispatch_get_main_queue_handle_4CF(void) __attribute__((weak));
extern void _dispatch_main_queue_callback_4CF(void *msg) __attribute__((weak));

void mp_serve_main_queue_forever(int lifeline_fd) {
    int handle = -1;
#ifdef __linux__
    if (_dispatch_get_main_queue_handle_4CF != NULL && _dispatch_main_queue_callback_4CF != NULL)
        handle = _dispatch_get_main_queue_handle_4CF();
#endif
    for (;;) {
        struct pollfd pfd[2];
        int n = 0;
        if (handle >= 0) pfd[n++] = (struct pollfd){handle, POLLIN, 0};
        // The parent's end of the channel: this thread watches it, so no thread is spent on it.
        int lifeline = n;
        if (lifeline_fd >= 0) pfd[n++] = (struct pollfd){lifeline_fd, mp_hang_up_events(), 0};
        if (n == 0) {
            pause();
            continue;
        }
        if (poll(pfd, (nfds_t)n, -1) <= 0) continue;
        if (lifeline_fd >= 0 && pfd[lifeline].revents != 0) {
            if (mp_hung_up(pfd[lifeline].revents)) mp_kill_descendants_and_die();
            if (pfd[lifeline].revents & POLLNVAL) lifeline_fd = -1;  // Closed under us: stop.
        }
#ifdef __linux__
        if (handle >= 0 && pfd[0].revents != 0) _dispatch_main_queue_callback_4CF(NULL);
#endif
    }
}

void mp_close_from(int lowfd) {
#if defined(__linux__) && defined(SYS_close_range)
    if (syscall(SYS_close_range, (unsigned)lowfd, ~0U, 0) == 0) return;
#endif
    long max = sysconf(_SC_OPEN_MAX);
    if (max < 0 || max > 65536) max = 65536;
    for (int fd = lowfd; fd < max; fd++) close(fd);
}

static int mp_dup2_retrying(int from, int to) {
    int r;
    do r = dup2(from, to);
    while (r < 0 && errno == EINTR);
    return r;
}

int mp_forked_child_setup(int stderr_fd, int channel_fd, char *const *variables, int count, const char *cwd,
                          int reset_backtracer) {
    if (stderr_fd >= 0 && mp_dup2_retrying(stderr_fd, 2) < 0) return 71;
    if (mp_dup2_retrying(channel_fd, 3) < 0) return 71;
    mp_close_from(4);
    if (reset_backtracer) mp_crash_handler_reset_inherited();
    for (int i = 0; i + 1 < count; i += 2)
        if (variables[i] != NULL && variables[i + 1] != NULL) setenv(variables[i], variables[i + 1], 1);
    if (cwd != NULL && chdir(cwd) != 0) return 72;
    if (fcntl(3, F_SETFD, FD_CLOEXEC) != 0) return 71;
    return 0;
}

void mp_block_sigpipe(void) {
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGPIPE);
    pthread_sigmask(SIG_BLOCK, &set, NULL);
}

void mp_unblock_all_signals(void) {
    sigset_t none;
    sigemptyset(&none);
    pthread_sigmask(SIG_SETMASK, &none, NULL);
}

void mp_name_current_thread(const char *name) {
    char short_name[16];
    strncpy(short_name, name, 15);
    short_name[15] = 0;
#if defined(__linux__)
    pthread_setname_np(pthread_self(), short_name);
#elif defined(__APPLE__)
    pthread_setname_np(short_name);
#endif
}

int mp_affinity_count(void) {
#ifdef __linux__
    cpu_set_t set;
    CPU_ZERO(&set);
    if (sched_getaffinity(0, sizeof set, &set) != 0) return -1;
    return CPU_COUNT(&set);
#else
    return -1;
#endif
}

#ifdef __linux__
int mp_epoll_create(void) { return epoll_create1(EPOLL_CLOEXEC); }

int mp_epoll_ctl(int epfd, int op, int fd, uint32_t events) {
    struct epoll_event event = {0};
    event.events = events;
    event.data.fd = fd;
    return epoll_ctl(epfd, op, fd, op == EPOLL_CTL_DEL ? NULL : &event);
}

int mp_epoll_wait(int epfd, int *fds, uint32_t *events, int max, int timeout_ms) {
    struct epoll_event buffer[64];
    if (max > 64) max = 64;
    int n = epoll_wait(epfd, buffer, max, timeout_ms);
    for (int i = 0; i < n; i++) {
        fds[i] = buffer[i].data.fd;
        events[i] = buffer[i].events;
    }
    return n;
}
#else
int mp_epoll_create(void) { errno = ENOSYS; return -1; }
int mp_epoll_ctl(int epfd, int op, int fd, uint32_t events) { (void)epfd; (void)op; (void)fd; (void)events; errno = ENOSYS; return -1; }
int mp_epoll_wait(int epfd, int *fds, uint32_t *events, int max, int timeout_ms) { (void)epfd; (void)fds; (void)events; (void)max; (void)timeout_ms; errno = ENOSYS; return -1; }
#endif

// MARK: - Fork server

// Request: header, then `env_len` bytes of NUL-separated "KEY=VALUE" pairs, then `cwd_len`
// bytes of working directory. Descriptors: [channel] or [channel, stderr]; for a sandbox's
// init (`init_flags` has MP_FS_SANDBOX_INIT), [channel, report link] or [channel, link, stderr].
struct mp_fs_request {
    uint32_t magic;
    uint32_t env_len;
    uint32_t cwd_len;
    uint32_t namespaces;  // The namespaces a sandbox's init is made in (clone flags), or 0.
    uint32_t init_flags;  // MP_FS_SANDBOX_INIT, MP_FS_EXEC_ONCE.
};
// Replies and notices: kind 1 = started (pid or err), kind 2 = exited (pid, wait status).
struct mp_fs_reply {
    int32_t kind;
    int32_t pid;
    int32_t status;
    int32_t err;
};
#define MP_FS_MAGIC 0x6d706673u
#define MP_FS_MAX_REQUEST 65536

static int mp_sigchld_pipe[2] = {-1, -1};

static void mp_on_sigchld(int sig) {
    (void)sig;
    int saved = errno;
    char b = 0;
    (void)!write(mp_sigchld_pipe[1], &b, 1);
    errno = saved;
}

static int mp_send_reply(int control_fd, int32_t kind, int32_t pid, int32_t status, int32_t err) {
    struct mp_fs_reply reply = {kind, pid, status, err};
    ssize_t n;
    do {
        n = send(control_fd, &reply, sizeof reply, MSG_NOSIGNAL);
    } while (n < 0 && errno == EINTR);
    return n == (ssize_t)sizeof reply ? 0 : -1;
}

int mp_forkserver_serve(int control_fd) {
    // Single-threaded by construction: this runs from the constructor, before any Swift
    // concurrency or Dispatch thread exists, so `fork` is safe here.
    mp_set_parent_death_signal(SIGKILL);
    if (mp_pipe(mp_sigchld_pipe) != 0) _exit(70);
    fcntl(mp_sigchld_pipe[0], F_SETFL, O_NONBLOCK);
    fcntl(mp_sigchld_pipe[1], F_SETFL, O_NONBLOCK);
    struct sigaction sa = {0};
    sa.sa_handler = mp_on_sigchld;
    sa.sa_flags = SA_RESTART | SA_NOCLDSTOP;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGCHLD, &sa, NULL);
    signal(SIGINT, SIG_IGN);  // Ctrl-C goes to the parent, which decides.
    pid_t self = getpid();
    static char buf[MP_FS_MAX_REQUEST + 1];

    for (;;) {
        struct pollfd pfd[2] = {{control_fd, POLLIN, 0}, {mp_sigchld_pipe[0], POLLIN, 0}};
        int r = poll(pfd, 2, -1);
        if (r < 0) {
            if (errno == EINTR) continue;
            _exit(71);
        }
        if (pfd[1].revents) {
            char drain[64];
            while (read(mp_sigchld_pipe[0], drain, sizeof drain) > 0) {
            }
            int status;
            pid_t pid;
            while ((pid = waitpid(-1, &status, WNOHANG)) > 0)
                if (mp_send_reply(control_fd, 2, pid, status, 0) != 0) _exit(0);
        }
        if (!pfd[0].revents) continue;
        int fd_count = 0;
        int notes = 0;
        int fds[3];
        ssize_t n = mp_recvmsg_fds(control_fd, buf, MP_FS_MAX_REQUEST, fds, 3, &fd_count, 0, &notes);
        if (n <= 0) _exit(0);  // The parent is gone: so are we (children follow by pdeathsig).
        if (notes & MP_FDS_TRUNCATED) {
            // A descriptor of the request could not be installed here (the descriptor limit):
            // refuse the request rather than start a child without its channel or its stderr.
            for (int i = 0; i < fd_count; i++) close(fds[i]);
            mp_send_reply(control_fd, 1, -1, 0, EMFILE);
            continue;
        }
        struct mp_fs_request req;
        if ((size_t)n < sizeof req || fd_count < 1) {
            for (int i = 0; i < fd_count; i++) close(fds[i]);
            mp_send_reply(control_fd, 1, -1, 0, EINVAL);
            continue;
        }
        memcpy(&req, buf, sizeof req);
        if (req.magic != MP_FS_MAGIC || sizeof req + (size_t)req.env_len + req.cwd_len != (size_t)n) {
            for (int i = 0; i < fd_count; i++) close(fds[i]);
            mp_send_reply(control_fd, 1, -1, 0, EINVAL);
            continue;
        }
        int sandbox_init = (req.init_flags & MP_FS_SANDBOX_INIT) != 0;
        if (sandbox_init && fd_count < 2) {
            for (int i = 0; i < fd_count; i++) close(fds[i]);
            mp_send_reply(control_fd, 1, -1, 0, EINVAL);
            continue;
        }
        buf[n] = 0;
        // A sandbox's init is born in its namespaces: pid 1 of its own PID namespace.
        pid_t child = sandbox_init ? mp_sb_clone_init(req.namespaces) : fork();
        if (child < 0) {
            int e = errno;
            for (int i = 0; i < fd_count; i++) close(fds[i]);
            mp_send_reply(control_fd, 1, -1, 0, e);
            continue;
        }
        if (child == 0) {
            close(control_fd);
            close(mp_sigchld_pipe[0]);
            close(mp_sigchld_pipe[1]);
            signal(SIGCHLD, SIG_DFL);
            signal(SIGINT, SIG_DFL);
            setpgid(0, 0);
            // Dies with the server (so with the server's parent), taking its descendants along.
            // An init cannot check: in its PID namespace the server is not visible (ppid 0); a
            // server gone meanwhile took the parent along, whose closed channel ends the task.
            if (mp_die_with_parent(self) != 0 && !sandbox_init) _exit(1);
            int err_index = sandbox_init ? 2 : 1;
            if (fd_count > err_index) {
                dup2(fds[err_index], 2);
                close(fds[err_index]);
            }
            char *env = buf + sizeof req;
            char *end = env + req.env_len;
            while (env < end) {
                size_t len = strnlen(env, (size_t)(end - env));
                env[len < (size_t)(end - env) ? len : (size_t)(end - env) - 1] = 0;
                char *eq = strchr(env, '=');
                if (eq != NULL) {
                    *eq = 0;
                    setenv(env, eq + 1, 1);
                }
                env += len + 1;
            }
            if (req.cwd_len > 0) {
                char *cwd = buf + sizeof req + req.env_len;
                cwd[req.cwd_len] = 0;
                if (chdir(cwd) != 0) _exit(72);
            }
            // Returns in the task only: the init stays in C, to reap and report.
            if (sandbox_init) return mp_sb_become_init(fds[0], fds[1], (req.init_flags & MP_FS_EXEC_ONCE) != 0);
            return fds[0];
        }
        for (int i = 0; i < fd_count; i++) close(fds[i]);
        if (mp_send_reply(control_fd, 1, child, 0, 0) != 0) _exit(0);
    }
}
