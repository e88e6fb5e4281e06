// Confinement (Sources/Multiprocessing/Sandbox): the system calls Swift cannot make itself
// (variadic prctl, ioctl and syscall: the new mount API, Landlock, seccomp, capsets) and the
// sandbox's init loop, which reaps, answers the seccomp filter's notifications and reports how
// the task ended. Every function returns 0 (or a descriptor) on success and -errno on failure.
#define _GNU_SOURCE
#include "CMultiprocessing.h"

#include <errno.h>
#include <limits.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdint.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>
#ifdef __linux__
#include <sched.h>
#include <linux/audit.h>
#include <linux/capability.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <net/if.h>
#include <sys/ioctl.h>
#include <sys/prctl.h>
#include <sys/signalfd.h>
#include "ProcPath.h"
#endif

#ifdef __linux__

#ifndef PR_CAP_AMBIENT
#define PR_CAP_AMBIENT 47
#define PR_CAP_AMBIENT_CLEAR_ALL 4
#endif
#ifndef SECBIT_NOROOT
#define SECBIT_NOROOT (1 << 0)
#define SECBIT_NOROOT_LOCKED (1 << 1)
#define SECBIT_NO_SETUID_FIXUP_LOCKED (1 << 3)
#define SECBIT_KEEP_CAPS_LOCKED (1 << 5)
#define SECBIT_NO_CAP_AMBIENT_RAISE (1 << 6)
#define SECBIT_NO_CAP_AMBIENT_RAISE_LOCKED (1 << 7)
#endif
#ifndef SYS_open_tree
#define SYS_open_tree 428
#endif
#ifndef SYS_move_mount
#define SYS_move_mount 429
#endif
#ifndef SYS_mount_setattr
#define SYS_mount_setattr 442
#endif
#ifndef SYS_landlock_create_ruleset
#define SYS_landlock_create_ruleset 444
#define SYS_landlock_add_rule 445
#define SYS_landlock_restrict_self 446
#endif
#ifndef OPEN_TREE_CLONE
#define OPEN_TREE_CLONE 1
#endif
#ifndef OPEN_TREE_CLOEXEC
#define OPEN_TREE_CLOEXEC O_CLOEXEC
#endif
#ifndef AT_RECURSIVE
#define AT_RECURSIVE 0x8000
#endif
#ifndef MOVE_MOUNT_F_EMPTY_PATH
#define MOVE_MOUNT_F_EMPTY_PATH 0x00000004
#endif
#ifndef SECCOMP_FILTER_FLAG_NEW_LISTENER
#define SECCOMP_FILTER_FLAG_NEW_LISTENER (1UL << 3)
#endif
#ifndef SECCOMP_USER_NOTIF_FLAG_CONTINUE
#define SECCOMP_USER_NOTIF_FLAG_CONTINUE (1UL << 0)
#endif

static int mp_sb_result(long rc) { return rc < 0 ? -errno : (int)rc; }

int mp_sb_prctl(int option, unsigned long a2, unsigned long a3, unsigned long a4, unsigned long a5) {
    return mp_sb_result(prctl(option, a2, a3, a4, a5));
}

int mp_sb_unshare(int flags) { return mp_sb_result(unshare(flags)); }

int mp_sb_set_ids(uint32_t uid, uint32_t gid) {
    if (setresgid(gid, gid, gid) != 0) return -errno;
    if (setresuid(uid, uid, uid) != 0) return -errno;
    return 0;
}

int mp_sb_set_rlimit(int resource, uint64_t soft, uint64_t hard) {
    struct rlimit limit = {(rlim_t)soft, (rlim_t)hard};
    if (soft == UINT64_MAX) limit.rlim_cur = RLIM_INFINITY;
    if (hard == UINT64_MAX) limit.rlim_max = RLIM_INFINITY;
    return mp_sb_result(setrlimit(resource, &limit));
}

int mp_sb_rlimit_resource(int which) {
    switch (which) {
    case 0: return RLIMIT_CPU;
    case 1: return RLIMIT_AS;
    case 2: return RLIMIT_NPROC;
    case 3: return RLIMIT_NOFILE;
    case 4: return RLIMIT_FSIZE;
    case 5: return RLIMIT_CORE;
    default: return -1;
    }
}

// MARK: Capabilities

int mp_sb_lock_securebits(void) {
    // No capabilities from uid 0 or across exec, none kept over a uid change, no ambient ones:
    // and none of it can be undone.
    int bits = SECBIT_NOROOT | SECBIT_NOROOT_LOCKED | SECBIT_NO_SETUID_FIXUP_LOCKED | SECBIT_KEEP_CAPS_LOCKED |
               SECBIT_NO_CAP_AMBIENT_RAISE | SECBIT_NO_CAP_AMBIENT_RAISE_LOCKED;
    return mp_sb_result(prctl(PR_SET_SECUREBITS, bits, 0, 0, 0));
}

int mp_sb_drop_bounding_set(int last_cap) {
    for (int cap = 0; cap <= last_cap; cap++) {
        if (prctl(PR_CAPBSET_DROP, cap, 0, 0, 0) != 0 && errno != EINVAL) return -errno;
    }
    return 0;
}

int mp_sb_clear_capabilities(void) {
    if (prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0) != 0 && errno != EINVAL) return -errno;
    struct __user_cap_header_struct header = {_LINUX_CAPABILITY_VERSION_3, 0};
    struct __user_cap_data_struct data[2];
    memset(data, 0, sizeof data);
    return mp_sb_result(syscall(SYS_capset, &header, data));
}

int mp_sb_capabilities_empty(void) {
    struct __user_cap_header_struct header = {_LINUX_CAPABILITY_VERSION_3, 0};
    struct __user_cap_data_struct data[2];
    memset(data, 0, sizeof data);
    if (syscall(SYS_capget, &header, data) != 0) return -errno;
    for (int i = 0; i < 2; i++)
        if (data[i].effective || data[i].permitted || data[i].inheritable) return 0;
    return 1;
}

int mp_sb_has_admin_capability(void) {
    struct __user_cap_header_struct header = {_LINUX_CAPABILITY_VERSION_3, 0};
    struct __user_cap_data_struct data[2];
    memset(data, 0, sizeof data);
    if (syscall(SYS_capget, &header, data) != 0) return 0;
    return (data[0].effective & (1u << 21)) != 0;  // CAP_SYS_ADMIN
}

// MARK: Mounts (the new mount API: a clone of a tree, made read-only before it is attached)

int mp_sb_open_tree(const char *path) {
    return mp_sb_result(syscall(SYS_open_tree, AT_FDCWD, path, OPEN_TREE_CLONE | OPEN_TREE_CLOEXEC | AT_RECURSIVE));
}

int mp_sb_mount_setattr(int fd, uint64_t set, uint64_t clear) {
    struct {
        uint64_t attr_set, attr_clr, propagation, userns_fd;
    } attr = {set, clear, 0, 0};
    return mp_sb_result(syscall(SYS_mount_setattr, fd, "", AT_EMPTY_PATH | AT_RECURSIVE, &attr, sizeof attr));
}

int mp_sb_mount_setattr_path(const char *path, uint64_t set, uint64_t clear) {
    struct {
        uint64_t attr_set, attr_clr, propagation, userns_fd;
    } attr = {set, clear, 0, 0};
    return mp_sb_result(syscall(SYS_mount_setattr, AT_FDCWD, path, 0, &attr, sizeof attr));
}

int mp_sb_move_mount(int fd, const char *target) {
    return mp_sb_result(syscall(SYS_move_mount, fd, "", AT_FDCWD, target, MOVE_MOUNT_F_EMPTY_PATH));
}

int mp_sb_pivot_root(const char *new_root, const char *put_old) {
    return mp_sb_result(syscall(SYS_pivot_root, new_root, put_old));
}

int mp_sb_setns(int fd, int type) { return mp_sb_result(setns(fd, type)); }

int mp_sb_has_children(void) {
    siginfo_t info;
    memset(&info, 0, sizeof info);
    return waitid(P_ALL, 0, &info, WEXITED | WNOHANG | WNOWAIT) == 0 ? 1 : 0;
}

void mp_sb_make_parents(const char *path, const char *previous, size_t root_length) {
    size_t length = strlen(path);
    if (length >= PATH_MAX) return;
    char buffer[PATH_MAX];
    memcpy(buffer, path, length + 1);
    for (size_t i = root_length + 1; i < length; i++) {
        if (buffer[i] != '/') continue;
        // A parent of `previous` too: made with it (the paths come sorted).
        if (previous != NULL && strncmp(previous, path, i) == 0 && (previous[i] == '/' || previous[i] == 0)) continue;
        buffer[i] = 0;
        (void)mkdir(buffer, 0755);
        buffer[i] = '/';
    }
}

// MARK: Network

int mp_sb_loopback_up(void) {
    int fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    if (fd < 0) return -errno;
    struct ifreq request;
    memset(&request, 0, sizeof request);
    strncpy(request.ifr_name, "lo", IFNAMSIZ - 1);
    int rc = 0;
    if (ioctl(fd, SIOCGIFFLAGS, &request) != 0) {
        rc = -errno;
    } else {
        request.ifr_flags |= IFF_UP | IFF_RUNNING;
        if (ioctl(fd, SIOCSIFFLAGS, &request) != 0) rc = -errno;
    }
    close(fd);
    return rc;
}

// MARK: Landlock

int mp_sb_landlock_abi(void) {
    long abi = syscall(SYS_landlock_create_ruleset, NULL, 0, 1 /* LANDLOCK_CREATE_RULESET_VERSION */);
    return abi < 0 ? -errno : (int)abi;
}

int mp_sb_landlock_create(uint64_t handled_fs, uint64_t handled_net, uint64_t scoped, int abi) {
    struct {
        uint64_t handled_access_fs, handled_access_net, scoped;
    } attr = {handled_fs, handled_net, scoped};
    // The structure grew with the ABI: give the kernel the size it knows.
    size_t size = abi >= 6 ? 24 : abi >= 4 ? 16 : 8;
    return mp_sb_result(syscall(SYS_landlock_create_ruleset, &attr, size, 0));
}

int mp_sb_landlock_allow_path(int ruleset, const char *path, uint64_t access) {
    int fd = open(path, O_PATH | O_CLOEXEC);
    if (fd < 0) return -errno;
    struct __attribute__((packed)) {
        uint64_t allowed_access;
        int32_t parent_fd;
    } rule = {access, fd};
    long rc = syscall(SYS_landlock_add_rule, ruleset, 1 /* LANDLOCK_RULE_PATH_BENEATH */, &rule, 0);
    int result = rc < 0 ? -errno : 0;
    close(fd);
    return result;
}

int mp_sb_landlock_restrict(int ruleset) {
    return mp_sb_result(syscall(SYS_landlock_restrict_self, ruleset, 0));
}

int mp_sb_path_is_directory(const char *path) {
    struct stat info;
    if (stat(path, &info) != 0) return -errno;
    return S_ISDIR(info.st_mode) ? 1 : 0;
}

// MARK: Seccomp

uint32_t mp_sb_audit_arch(void) {
#if defined(__x86_64__)
    return AUDIT_ARCH_X86_64;
#elif defined(__aarch64__)
    return AUDIT_ARCH_AARCH64;
#else
    return 0;
#endif
}

int mp_sb_seccomp_install(const struct mp_bpf_insn *program, int count, int listener) {
    struct sock_filter filter[count > 0 ? count : 1];
    for (int i = 0; i < count; i++) {
        filter[i].code = program[i].code;
        filter[i].jt = program[i].jt;
        filter[i].jf = program[i].jf;
        filter[i].k = program[i].k;
    }
    struct sock_fprog fprog = {(unsigned short)count, filter};
    unsigned long flags = listener ? SECCOMP_FILTER_FLAG_NEW_LISTENER : 0;
    return mp_sb_result(syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, flags, &fprog));
}

int mp_sb_seccomp_install_packed(const uint64_t *packed, int count, int listener) {
    struct sock_filter filter[count > 0 ? count : 1];
    for (int i = 0; i < count; i++) {
        filter[i].code = (uint16_t)(packed[i] >> 48);
        filter[i].jt = (uint8_t)(packed[i] >> 40);
        filter[i].jf = (uint8_t)(packed[i] >> 32);
        filter[i].k = (uint32_t)packed[i];
    }
    struct sock_fprog fprog = {(unsigned short)count, filter};
    unsigned long flags = listener ? SECCOMP_FILTER_FLAG_NEW_LISTENER : 0;
    return mp_sb_result(syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, flags, &fprog));
}

// MARK: The init loop

// The thread group of `tid`, from /proc (mounted in the sandbox): a notification names the
// thread that made the call.
static pid_t mp_sb_thread_group(pid_t tid) {
    char path[40];
    mp_proc_path(tid, "/status", path);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return -1;
    char buf[1024];
    ssize_t got = read(fd, buf, sizeof buf - 1);
    close(fd);
    if (got <= 0) return -1;
    buf[got] = 0;
    char *line = strstr(buf, "\nTgid:");
    if (line == NULL) return -1;
    line += 6;
    while (*line == ' ' || *line == '\t') line++;
    pid_t group = 0;
    while (*line >= '0' && *line <= '9') group = group * 10 + (*line++ - '0');
    return group;
}

static void mp_sb_write_all(int fd, const void *bytes, size_t length) {
    const char *p = bytes;
    while (length > 0) {
        ssize_t n = write(fd, p, length);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) return;
        p += n;
        length -= (size_t)n;
    }
}

void mp_sb_serve_init(pid_t task, int notify_fd, int report_fd, int exec_once) {
    struct mp_sb_exit_record record;
    memset(&record, 0, sizeof record);
    record.denied_call = -1;
    sigset_t children;
    sigemptyset(&children);
    sigaddset(&children, SIGCHLD);
    sigprocmask(SIG_BLOCK, &children, NULL);
    int child_fd = signalfd(-1, &children, SFD_CLOEXEC | SFD_NONBLOCK);
    int exec_used = 0;
    int done = 0;
    // SIGCHLD may have come before the signalfd existed: look once before the first wait.
    int look = 1;
    while (!done) {
        if (!look) {
            struct pollfd fds[2] = {{child_fd, POLLIN, 0}, {notify_fd, POLLIN, 0}};
            int ready = poll(fds, notify_fd >= 0 ? 2 : 1, child_fd >= 0 ? -1 : 50);
            if (ready < 0 && errno != EINTR) break;
            if (notify_fd >= 0 && ready > 0 && (fds[1].revents & POLLIN)) {
                struct seccomp_notif notif;
                memset(&notif, 0, sizeof notif);
                if (ioctl(notify_fd, SECCOMP_IOCTL_NOTIF_RECV, &notif) == 0) {
                    struct seccomp_notif_resp resp;
                    memset(&resp, 0, sizeof resp);
                    resp.id = notif.id;
                    int is_exec = notif.data.nr == (int)mp_sb_execve_number() ||
                                  notif.data.nr == (int)mp_sb_execveat_number();
                    pid_t caller = (pid_t)notif.pid;
                    if (exec_once && is_exec && !exec_used &&
                        (caller == task || mp_sb_thread_group(caller) == task)) {
                        // The program's own start: the one exec a program sandbox allows.
                        exec_used = 1;
                        resp.flags = SECCOMP_USER_NOTIF_FLAG_CONTINUE;
                    } else {
                        // A violation: the sandbox ends, with the call's name as its verdict.
                        if (record.denied_call < 0) {
                            record.denied_call = notif.data.nr;
                            record.denied_arch = notif.data.arch;
                        }
                        resp.error = -EPERM;
                        kill(task, SIGKILL);
                        if (caller != task) kill(caller, SIGKILL);
                    }
                    ioctl(notify_fd, SECCOMP_IOCTL_NOTIF_SEND, &resp);
                }
            } else if (notify_fd >= 0 && ready > 0 && (fds[1].revents & (POLLHUP | POLLERR | POLLNVAL))) {
                // No process is under the filter any more (the task is ending): the listener
                // would report that at once on every poll, a busy loop until the task is reaped.
                notify_fd = -1;
            }
            if (child_fd >= 0 && ready > 0 && (fds[0].revents & POLLIN)) {
                struct signalfd_siginfo info;
                while (read(child_fd, &info, sizeof info) > 0) {
                }
            }
        }
        look = 0;
        int status;
        struct rusage usage;
        pid_t pid;
        while ((pid = wait4(-1, &status, WNOHANG | __WALL, &usage)) > 0) {
            if (pid != task) continue;  // An orphan of the sandbox: reaped, nothing more.
            record.status = status;
            record.cpu_microseconds = (uint64_t)usage.ru_utime.tv_sec * 1000000u + (uint64_t)usage.ru_utime.tv_usec +
                                      (uint64_t)usage.ru_stime.tv_sec * 1000000u + (uint64_t)usage.ru_stime.tv_usec;
            record.max_resident_kib = (uint64_t)usage.ru_maxrss;
            done = 1;
        }
        if (pid < 0 && errno == ECHILD && !done) {
            record.status = 0x7f00;  // Lost (cannot happen: the task is our child).
            done = 1;
        }
    }
    unsigned char frame[1 + 4 + sizeof record];
    uint32_t length = (uint32_t)sizeof record;
    frame[0] = 2;
    memcpy(frame + 1, &length, 4);
    memcpy(frame + 5, &record, sizeof record);
    mp_sb_write_all(report_fd, frame, sizeof frame);
    // As the namespace's init, leaving takes every process left in it along.
    _exit(0);
}

static int mp_sb_handover_fd = -1;

int mp_sb_direct_handover(void) { return mp_sb_handover_fd; }

pid_t mp_sb_clone_init(uint32_t namespaces) {
    // A plain clone, like fork but in new namespaces: the server has one thread and takes no
    // lock, so nothing of glibc's fork bookkeeping is needed in this child, which runs only C
    // until it forks the task with glibc's fork.
    return (pid_t)syscall(SYS_clone, (unsigned long)namespaces | SIGCHLD, 0, NULL, NULL, 0);
}

int mp_sb_become_init(int channel, int link, int exec_once) {
    // The group's signals are the task's (it sets them back once confined): the init outlives
    // them to report.
    static const int group[] = {SIGTERM, SIGINT, SIGHUP, SIGQUIT, SIGUSR1, SIGUSR2, SIGPIPE, SIGALRM};
    for (size_t i = 0; i < sizeof group / sizeof group[0]; i++) signal(group[i], SIG_IGN);
    int pair[2];
    if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, pair) != 0) _exit(70);
    pid_t task = fork();
    if (task < 0) _exit(70);
    if (task == 0) {
        close(pair[0]);
        close(link);  // The task reports on its own copy, which it closes before it runs anything.
        mp_sb_handover_fd = pair[1];
        return channel;
    }
    close(pair[1]);
    close(channel);  // The task's: a copy here would hide its end from the parent.
    // The filter's listener, once the task is confined (or end of file: no filter, or the task
    // ended first).
    unsigned char message = 0;
    int received[1] = {-1};
    int count = 0;
    int notes = 0;
    ssize_t n = mp_recvmsg_fds(pair[0], &message, 1, received, 1, &count, 0, &notes);
    int listener = n == 1 && message == 1 && count == 1 ? received[0] : -1;
    if (listener < 0 && count == 1) close(received[0]);
    close(pair[0]);
    // Nothing of the task's stays open here: only the link (3) and the listener (4).
    int report = fcntl(link, F_DUPFD_CLOEXEC, 100);
    int notify = listener >= 0 ? fcntl(listener, F_DUPFD_CLOEXEC, 101) : -1;
    dup2(report, 3);
    if (notify >= 0) dup2(notify, 4);
    mp_close_from(notify >= 0 ? 5 : 4);
    mp_sb_serve_init(task, notify >= 0 ? 4 : -1, 3, exec_once);
}

long mp_sb_execve_number(void) { return SYS_execve; }
long mp_sb_execveat_number(void) {
#ifdef SYS_execveat
    return SYS_execveat;
#else
    return -1;
#endif
}

void mp_sb_exit_like(int status) {
    if (WIFEXITED(status)) _exit(WEXITSTATUS(status));
    if (WIFSIGNALED(status)) {
        int sig = WTERMSIG(status);
        struct sigaction action;
        memset(&action, 0, sizeof action);
        action.sa_handler = SIG_DFL;
        sigaction(sig, &action, NULL);
        // No core file: the signal is re-raised to be reported, the task's dump is its own.
        struct rlimit none = {0, 0};
        setrlimit(RLIMIT_CORE, &none);
        sigset_t only;
        sigemptyset(&only);
        sigaddset(&only, sig);
        sigprocmask(SIG_UNBLOCK, &only, NULL);
        raise(sig);
        _exit(128 + sig);
    }
    _exit(255);
}

#else  // Not Linux: no confinement.

int mp_sb_prctl(int option, unsigned long a2, unsigned long a3, unsigned long a4, unsigned long a5) {
    (void)option; (void)a2; (void)a3; (void)a4; (void)a5;
    return -ENOSYS;
}
int mp_sb_unshare(int flags) { (void)flags; return -ENOSYS; }
int mp_sb_set_ids(uint32_t uid, uint32_t gid) { (void)uid; (void)gid; return -ENOSYS; }
int mp_sb_set_rlimit(int resource, uint64_t soft, uint64_t hard) { (void)resource; (void)soft; (void)hard; return -ENOSYS; }
int mp_sb_rlimit_resource(int which) { (void)which; return -1; }
int mp_sb_lock_securebits(void) { return -ENOSYS; }
int mp_sb_drop_bounding_set(int last_cap) { (void)last_cap; return -ENOSYS; }
int mp_sb_clear_capabilities(void) { return -ENOSYS; }
int mp_sb_capabilities_empty(void) { return -ENOSYS; }
int mp_sb_has_admin_capability(void) { return 0; }
int mp_sb_open_tree(const char *path) { (void)path; return -ENOSYS; }
int mp_sb_mount_setattr(int fd, uint64_t set, uint64_t clear) { (void)fd; (void)set; (void)clear; return -ENOSYS; }
int mp_sb_mount_setattr_path(const char *path, uint64_t set, uint64_t clear) { (void)path; (void)set; (void)clear; return -ENOSYS; }
int mp_sb_move_mount(int fd, const char *target) { (void)fd; (void)target; return -ENOSYS; }
int mp_sb_pivot_root(const char *new_root, const char *put_old) { (void)new_root; (void)put_old; return -ENOSYS; }
int mp_sb_setns(int fd, int type) { (void)fd; (void)type; return -ENOSYS; }
int mp_sb_has_children(void) { return 1; }
void mp_sb_make_parents(const char *path, const char *previous, size_t root_length) { (void)path; (void)previous; (void)root_length; }
int mp_sb_loopback_up(void) { return -ENOSYS; }
int mp_sb_landlock_abi(void) { return -ENOSYS; }
int mp_sb_landlock_create(uint64_t fs, uint64_t net, uint64_t scoped, int abi) { (void)fs; (void)net; (void)scoped; (void)abi; return -ENOSYS; }
int mp_sb_landlock_allow_path(int ruleset, const char *path, uint64_t access) { (void)ruleset; (void)path; (void)access; return -ENOSYS; }
int mp_sb_landlock_restrict(int ruleset) { (void)ruleset; return -ENOSYS; }
int mp_sb_path_is_directory(const char *path) { (void)path; return -ENOSYS; }
uint32_t mp_sb_audit_arch(void) { return 0; }
int mp_sb_seccomp_install(const struct mp_bpf_insn *program, int count, int listener) { (void)program; (void)count; (void)listener; return -ENOSYS; }
int mp_sb_seccomp_install_packed(const uint64_t *packed, int count, int listener) { (void)packed; (void)count; (void)listener; return -ENOSYS; }
int mp_sb_direct_handover(void) { return -1; }
pid_t mp_sb_clone_init(uint32_t namespaces) { (void)namespaces; errno = ENOSYS; return -1; }
int mp_sb_become_init(int channel, int link, int exec_once) { (void)channel; (void)link; (void)exec_once; _exit(70); }
void mp_sb_serve_init(pid_t task, int notify_fd, int report_fd, int exec_once) { (void)task; (void)notify_fd; (void)report_fd; (void)exec_once; _exit(70); }
long mp_sb_execve_number(void) { return -1; }
long mp_sb_execveat_number(void) { return -1; }
void mp_sb_exit_like(int status) {
    if (WIFEXITED(status)) _exit(WEXITSTATUS(status));
    if (WIFSIGNALED(status)) {
        signal(WTERMSIG(status), SIG_DFL);
        raise(WTERMSIG(status));
    }
    _exit(255);
}

#endif
