#ifndef C_MULTIPROCESSING_H
#define C_MULTIPROCESSING_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

/// Name of the environment variable that turns a copy of the binary into a child.
#define MP_CHILD_ENV "SWIFT_MULTIPROCESSING_CHILD"

/// Spawns `path` with `argv`/`envp`, keeping only `keep_fds` (and 0,1,2) open in the child.
/// `stderr_fd` >= 0 replaces fd 2. `cwd` may be NULL. The child gets its own process group.
/// Returns 0 and stores the pid, or an errno value.
int mp_spawn(const char *path, char *const argv[], char *const envp[], const int *keep_fds,
             int keep_count, int stderr_fd, const char *cwd, pid_t *out_pid);

/// The most descriptors the kernel passes with one message (Linux's SCM_MAX_FD).
#define MP_SCM_MAX_FD 253

/// Sends `len` bytes and `fd_count` descriptors in one message (SCM_RIGHTS), with `sendmsg`
/// `flags` (MSG_DONTWAIT); MSG_NOSIGNAL is always added. At most MP_SCM_MAX_FD descriptors
/// (EINVAL beyond). Returns bytes sent or -1 with errno.
ssize_t mp_sendmsg_fds(int sock, const void *buf, size_t len, const int *fds, int fd_count,
                       int flags);

/// What `mp_recvmsg_fds` noticed about a message's descriptors (bits of `*notes`).
enum {
    /// More descriptors arrived than `max_fds`: the excess was closed at once.
    MP_FDS_EXCESS = 1,
    /// The kernel dropped descriptors (MSG_CTRUNC): they could not be installed in this
    /// process, almost always because it is at its descriptor limit.
    MP_FDS_TRUNCATED = 2,
};

/// Receives one message and up to `max_fds` descriptors (close-on-exec), with `recvmsg` flags (MSG_DONTWAIT, MSG_PEEK). `notes` (may be
/// NULL) receives MP_FDS_* bits; descriptors beyond `max_fds` are closed, never kept.
ssize_t mp_recvmsg_fds(int sock, void *buf, size_t len, int *fds, int max_fds, int *fd_count,
                       int flags, int *notes);

/// Linux: the child receives `sig` when its parent thread dies. No-op elsewhere.
int mp_set_parent_death_signal(int sig);

/// Process trees (ProcessTree.c): a child dies with its parent and takes its descendants along.

/// The signal a child asks for when its parent dies (a real-time signal on Linux, 0 elsewhere).
int mp_parent_death_signal(void);

/// Makes the calling process die with its parent, killing every descendant first: catches
/// ``mp_parent_death_signal()`` (unblocked in the calling thread) and asks for it with
/// PR_SET_PDEATHSIG. Returns 0, or -1 when the parent is no longer `parent` (it died first).
int mp_die_with_parent(pid_t parent);

/// A private close-on-exec copy of the control channel, for watching it for a hang-up (the
/// parent's end closes only when the parent dies) whatever the task does with `control_fd`.
/// -1 on failure.
int mp_lifeline_open(int control_fd);

/// The `poll` events that report a hang-up of the peer, and whether `revents` holds one.
short mp_hang_up_events(void);
int mp_hung_up(short revents);

/// Starts a thread that waits for the peer of the socket `fd` to hang up, then kills the
/// process tree like the parent-death signal; the thread also takes that signal whatever the
/// other threads block. For a forked child, whose only thread runs the task (other children's
/// main thread watches in ``mp_serve_main_queue_forever``). Returns 0 or an errno value.
int mp_watch_parent_channel(int fd);

/// Kills every descendant of this process (becoming their subreaper, so that none escapes by
/// being orphaned), then its process group if it leads one, then itself. Async-signal-safe.
void mp_kill_descendants_and_die(void) __attribute__((noreturn));

/// Ends a child with `_exit(code)`, unless its parent has gone (`control_fd` hung up, or it was
/// re-parented): then it kills its descendants and itself instead. Waits to be killed if
/// another thread is already doing that.
void mp_child_exit(int code, int control_fd) __attribute__((noreturn));

/// Runs the resource tracker (ResourceTracker.c) on the SOCK_SEQPACKET socket `fd`: forks a
/// detached copy in a session of its own that ignores SIGINT/SIGTERM/SIGHUP, sends its pid, then
/// records 'R'/'U' + name messages; at end-of-file it unlinks every name still registered.
/// Never returns (the calling copy exits at once).
void mp_resource_tracker_serve(int fd) __attribute__((noreturn));

/// Linux 5.3+: a pollable descriptor for a process, or -1.
int mp_pidfd_open(pid_t pid);

/// A close-on-exec pipe (`pipe2`, which Swift's Glibc module does not declare). Returns 0 or
/// errno.
int mp_pipe(int fds[2]);

/// Runs the fork server loop on `control_fd`. Returns only in a forked child, with the fd
/// of the child's channel; the server itself exits when its parent goes away.
int mp_forkserver_serve(int control_fd);
/// Flags of a fork request (`ForkServer`): the child is a sandbox's init, born in the request's
/// namespaces; that init lets the task's first exec through (a program's own start).
#define MP_FS_SANDBOX_INIT 1u
#define MP_FS_EXEC_ONCE 2u

/// `fork()` for the explicit, documented-unsafe fork start method.
pid_t mp_fork(void);

/// Serves Dispatch's main queue on the calling (main) thread forever, so `@MainActor` work
/// runs in a child. Unlike `dispatchMain`, never unwinds the thread, which would crash when it
/// is called from a constructor. Also watches `lifeline_fd` (from ``mp_lifeline_open``, or -1):
/// when the parent's end hangs up, kills the process tree (``mp_kill_descendants_and_die``).
void mp_serve_main_queue_forever(int lifeline_fd) __attribute__((noreturn));

/// Closes every descriptor >= `lowfd` (close_range where the kernel has it).
void mp_close_from(int lowfd);

/// A `.fork` child's first steps, in C so that no Swift runtime lock is needed (another thread
/// of the parent may have held one at the fork): `stderr_fd` (unless -1) becomes fd 2 and
/// `channel_fd` fd 3, close-on-exec; every descriptor above is closed; the inherited crash
/// backtracer is reset if asked; `variables` (`count` strings: name, value, name, value, ...)
/// are set; the working directory becomes `cwd` (unless NULL). Returns 0, or the exit code to
/// leave with: 71 (a descriptor step failed), 72 (`chdir` failed).
int mp_forked_child_setup(int stderr_fd, int channel_fd, char *const *variables, int count, const char *cwd,
                          int reset_backtracer);

/// Blocks SIGPIPE in the calling thread, so a write to a closed pipe fails with EPIPE instead of
/// killing the process.
void mp_block_sigpipe(void);

/// Unblocks every signal in the calling thread.
void mp_unblock_all_signals(void);

/// Names the calling thread (truncated to 15 bytes on Linux).
void mp_name_current_thread(const char *name);

/// The number of CPUs in this process's affinity mask, or -1.
int mp_affinity_count(void);

/// epoll, without its packed struct: events are reported as parallel arrays.
enum {
    MP_EPOLL_CTL_ADD = 1,
    MP_EPOLL_CTL_DEL = 2,
    MP_EPOLL_CTL_MOD = 3,
    MP_EPOLLIN = 0x001,
    MP_EPOLLOUT = 0x004,
    MP_EPOLLERR = 0x008,
    MP_EPOLLHUP = 0x010,
    MP_EPOLLRDHUP = 0x2000,
    MP_EPOLLONESHOT = 0x40000000,
};
int mp_epoll_create(void);
int mp_epoll_ctl(int epfd, int op, int fd, uint32_t events);
int mp_epoll_wait(int epfd, int *fds, uint32_t *events, int max, int timeout_ms);


/// Shared memory and futexes (SharedMemory.c).

/// An anonymous shared-memory file (memfd, close-on-exec), empty. Returns the fd or -1 with
/// errno. (`memfd_create` is not in Swift's Glibc module.)
int mp_memfd_create(const char *debug_name);

/// Sleeps while `*address == expected` (a process-shared futex) until woken, or until the
/// CLOCK_MONOTONIC instant `deadline_ns` (< 0: no deadline). Returns 0 when woken (possibly
/// spuriously), EAGAIN when the value differed, ETIMEDOUT, or EINTR.
int mp_futex_wait(uint32_t *address, uint32_t expected, int64_t deadline_ns);

/// Wakes up to `count` sleepers on `address`. Returns how many woke.
int mp_futex_wake(uint32_t *address, int count);

/// The calling thread's id (cached per thread, refreshed in a forked child).
int32_t mp_current_tid(void);

/// The calling process's id (cached, refreshed in a forked child).
int32_t mp_current_pid(void);

/// A CPU pause hint for spin loops.
void mp_spin_pause(void);

/// Crash reports (CrashHandler.c).

/// Installs a handler for the fatal signals (SIGILL, SIGTRAP, SIGABRT, SIGBUS, SIGFPE, SIGSEGV)
/// that sends the crashing thread's backtrace and the mappings it runs in as one crash-report
/// frame on `report_fd`, then lets the signal go on to the handler that was there before (the
/// default: death by that signal). Also gives the calling thread an alternate signal stack if it
/// has none. Returns 0 or an errno value.
int mp_crash_handler_install(int report_fd);

/// In a child made by `fork`: the crash handlers inherited from the parent (Swift's backtracer,
/// by default) go back to the default action, as in a spawned child.
void mp_crash_handler_reset_inherited(void);

/// A C++ symbol's readable form (malloc'ed), or NULL when it is not one or there is no
/// demangler.
char *mp_demangle_cxx(const char *mangled);

/// The Swift runtime's demangler (libswiftCore): a malloc'ed, NUL-terminated readable name, or
/// NULL when `mangled` is not a Swift symbol.
char *swift_demangle(const char *mangled, size_t length, char *output, size_t *output_size,
                     uint32_t flags);

/// Confinement (Sandbox.c): thin wrappers over the system calls Swift cannot make. Each returns
/// 0 (or a descriptor, or a count) on success and -errno on failure.

/// One classic BPF instruction (`struct sock_filter`).
struct mp_bpf_insn {
    uint16_t code;
    uint8_t jt;
    uint8_t jf;
    uint32_t k;
};

/// What the sandbox's init reports when the task has ended.
struct mp_sb_exit_record {
    int32_t status;          // The task's wait status.
    int32_t denied_call;     // The system call the filter stopped, or -1.
    uint32_t denied_arch;    // Its AUDIT_ARCH_*.
    int32_t reserved;
    uint64_t cpu_microseconds;
    uint64_t max_resident_kib;
};

/// `unshare(flags)`.
int mp_sb_unshare(int flags);
/// `setresgid` then `setresuid`, all three ids each.
int mp_sb_set_ids(uint32_t uid, uint32_t gid);
int mp_sb_prctl(int option, unsigned long a2, unsigned long a3, unsigned long a4, unsigned long a5);
/// `setrlimit`; UINT64_MAX is "unlimited".
int mp_sb_set_rlimit(int resource, uint64_t soft, uint64_t hard);
/// RLIMIT_* for 0 CPU, 1 AS, 2 NPROC, 3 NOFILE, 4 FSIZE, 5 CORE.
int mp_sb_rlimit_resource(int which);
int mp_sb_lock_securebits(void);
int mp_sb_drop_bounding_set(int last_cap);
/// Clears the ambient, inheritable, permitted and effective sets.
int mp_sb_clear_capabilities(void);
/// 1 when no capability is left, 0 when some is, -errno.
int mp_sb_capabilities_empty(void);
/// 1 when the calling thread has CAP_SYS_ADMIN in its user namespace.
int mp_sb_has_admin_capability(void);
/// A detached, recursive clone of the mount tree at `path` (open_tree).
int mp_sb_open_tree(const char *path);
/// mount_setattr on a detached tree, recursively.
int mp_sb_mount_setattr(int fd, uint64_t set, uint64_t clear);
/// mount_setattr on the mount at `path` alone.
int mp_sb_mount_setattr_path(const char *path, uint64_t set, uint64_t clear);
/// Attaches the detached tree `fd` at `target` (move_mount).
int mp_sb_move_mount(int fd, const char *target);
int mp_sb_pivot_root(const char *new_root, const char *put_old);
/// Brings the loopback interface of the current network namespace up.
int mp_sb_loopback_up(void);
/// The Landlock ABI version, or -errno when the kernel has none.
int mp_sb_landlock_abi(void);
int mp_sb_landlock_create(uint64_t handled_fs, uint64_t handled_net, uint64_t scoped, int abi);
int mp_sb_landlock_allow_path(int ruleset, const char *path, uint64_t access);
int mp_sb_landlock_restrict(int ruleset);
/// 1 for a directory, 0 for anything else, -errno.
int mp_sb_path_is_directory(const char *path);
/// The AUDIT_ARCH_* value seccomp reports for this build's architecture (0: unknown).
uint32_t mp_sb_audit_arch(void);
/// Enters the namespace `fd` refers to (`setns`); 0 or -errno.
int mp_sb_setns(int fd, int type);
/// 1 when the calling process has a child (running or not yet reaped), else 0: a look at the
/// wait queue instead of a scan of /proc.
int mp_sb_has_children(void);
/// `mkdir -p` of `path`'s parent directories after its first `root_length` bytes, skipping those
/// that are also parents of `previous` (the path made before, or NULL).
void mp_sb_make_parents(const char *path, const char *previous, size_t root_length);
/// Installs a seccomp filter; with `listener`, returns its notification descriptor.
int mp_sb_seccomp_install(const struct mp_bpf_insn *program, int count, int listener);
/// Installs a filter given packed (code << 48 | jt << 40 | jf << 32 | k per word, as a sandbox's
/// plan carries it): no unpacking in Swift in the child that installs it.
int mp_sb_seccomp_install_packed(const uint64_t *packed, int count, int listener);
long mp_sb_execve_number(void);
long mp_sb_execveat_number(void);
/// A fork server's child born as a sandbox's init, in `namespaces` (clone flags, with a new
/// PID namespace among them): the pid in the parent, 0 in the child, -1 with errno.
pid_t mp_sb_clone_init(uint32_t namespaces);
/// In a child made by `mp_sb_clone_init`: forks the task and returns its control channel in
/// the task only; the init stays here in C (``mp_sb_serve_init``), reporting on `link` how the
/// task ended. With `exec_once`, the task's first exec is let through.
int mp_sb_become_init(int channel, int link, int exec_once);
/// In the task of such an init: the socket on which it hands the init its filter's listener
/// (and then closes it), or -1 in any other process.
int mp_sb_direct_handover(void);
/// The sandbox's init: reaps, answers the filter's notifications (`notify_fd`, or -1), and when
/// `task` has ended writes an exit record (kind 2) to `report_fd` and exits. With `exec_once`,
/// the task's first exec is let through (a program's own start).
void mp_sb_serve_init(pid_t task, int notify_fd, int report_fd, int exec_once) __attribute__((noreturn));
/// Ends the calling process the way `status` (a wait status) says: the same exit code, or the
/// same signal.
void mp_sb_exit_like(int status) __attribute__((noreturn));
/// Sends SIGKILL to every child of the calling process (found in /proc). How many.
int mp_kill_child_processes(void);

#endif
