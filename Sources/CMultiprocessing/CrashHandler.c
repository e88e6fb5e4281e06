// A child's crash handler: on a fatal signal, the crashing thread's backtrace and the mappings
// its addresses fall in are sent to the parent as one frame on the control channel; the parent
// symbolicates them (it runs the same binary). Everything here is async-signal-safe except the
// unwinder, which may take the loader's lock: an alarm ends a handler that hangs on it.
#define _GNU_SOURCE
#include "CMultiprocessing.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdint.h>
#include <string.h>
#include <time.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <ucontext.h>
#include <unistd.h>
#if defined(__GLIBC__) || defined(__APPLE__)
#include <execinfo.h>
#define MP_HAVE_BACKTRACE 1
#endif
#include <unwind.h>

// The unwinder itself, from libgcc_s (loaded with the Swift runtime): unlike glibc's
// `backtrace`, its first use loads nothing, so a child pays nothing for it until it crashes.
// Weak: where it is missing, `backtrace` (warmed up at install) is used instead.
extern _Unwind_Reason_Code _Unwind_Backtrace(_Unwind_Trace_Fn, void *) __attribute__((weak));
extern uintptr_t _Unwind_GetIP(struct _Unwind_Context *) __attribute__((weak));
#ifdef __linux__
#include <sys/prctl.h>
#endif

#define MP_CRASH_MAX_FRAMES 64
#define MP_CRASH_MAX_IMAGES 32
#define MP_CRASH_MAX_PATH 255

static const int mp_crash_signals[] = {SIGILL, SIGTRAP, SIGABRT, SIGBUS, SIGFPE, SIGSEGV};
#define MP_CRASH_SIGNAL_COUNT (int)(sizeof mp_crash_signals / sizeof mp_crash_signals[0])
static struct sigaction mp_crash_previous[MP_CRASH_SIGNAL_COUNT];
static int mp_crash_fd = -1;
static int32_t mp_crash_reporter = 0;  // The thread id reporting, 0 before any crash.
static int mp_crash_reported = 0;
static char mp_crash_stack[64 * 1024];
// Header (8) + fixed part + frames + images: well under this.
static unsigned char mp_crash_buffer[8 + 64 + 8 * MP_CRASH_MAX_FRAMES +
                                    MP_CRASH_MAX_IMAGES * (26 + MP_CRASH_MAX_PATH) + 16];

typedef struct {
    unsigned char *base;
    size_t length;
    size_t capacity;
} mp_crash_writer;

static void mp_put(mp_crash_writer *w, const void *bytes, size_t count) {
    if (w->length + count > w->capacity) return;
    memcpy(w->base + w->length, bytes, count);
    w->length += count;
}

static void mp_put_u16(mp_crash_writer *w, uint16_t v) { mp_put(w, &v, 2); }
static void mp_put_u32(mp_crash_writer *w, uint32_t v) { mp_put(w, &v, 4); }
static void mp_put_u64(mp_crash_writer *w, uint64_t v) { mp_put(w, &v, 8); }

static uintptr_t mp_context_pc(void *context) {
    ucontext_t *uc = (ucontext_t *)context;
    if (uc == NULL) return 0;
#if defined(__linux__) && defined(__x86_64__)
    return (uintptr_t)uc->uc_mcontext.gregs[REG_RIP];
#elif defined(__linux__) && defined(__aarch64__)
    return (uintptr_t)uc->uc_mcontext.pc;
#elif defined(__APPLE__) && defined(__x86_64__)
    return (uintptr_t)uc->uc_mcontext->__ss.__rip;
#elif defined(__APPLE__) && defined(__aarch64__)
    return (uintptr_t)uc->uc_mcontext->__ss.__pc;
#else
    return 0;
#endif
}

static int mp_hex_digit(char c) {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

static const char *mp_parse_hex(const char *p, const char *end, uint64_t *out) {
    uint64_t v = 0;
    int d;
    while (p < end && (d = mp_hex_digit(*p)) >= 0) {
        v = (v << 4) | (uint64_t)d;
        p++;
    }
    *out = v;
    return p;
}

typedef struct {
    uint64_t start, end, offset;
    uint16_t path_length;
    char path[MP_CRASH_MAX_PATH];
} mp_crash_image;

static mp_crash_image mp_crash_images[MP_CRASH_MAX_IMAGES];

// One line of /proc/self/maps: "start-end perms offset dev inode   path". Records it if one of
// the frames falls in it.
static void mp_consider_mapping(const char *line, const char *end, const uint64_t *frames, int frame_count,
                                int *image_count) {
    uint64_t start, stop, offset, unused;
    const char *p = mp_parse_hex(line, end, &start);
    if (p >= end || *p != '-') return;
    p = mp_parse_hex(p + 1, end, &stop);
    int wanted = 0;
    for (int i = 0; i < frame_count && !wanted; i++) wanted = frames[i] >= start && frames[i] < stop;
    if (!wanted || *image_count >= MP_CRASH_MAX_IMAGES) return;
    while (p < end && *p == ' ') p++;
    while (p < end && *p != ' ') p++;  // perms
    while (p < end && *p == ' ') p++;
    p = mp_parse_hex(p, end, &offset);
    while (p < end && *p == ' ') p++;
    while (p < end && *p != ' ') p++;  // dev
    while (p < end && *p == ' ') p++;
    p = mp_parse_hex(p, end, &unused);  // inode (decimal digits parse as hex: unused)
    while (p < end && *p == ' ') p++;
    mp_crash_image *image = &mp_crash_images[(*image_count)++];
    image->start = start;
    image->end = stop;
    image->offset = offset;
    size_t length = (size_t)(end - p);
    if (length > MP_CRASH_MAX_PATH) length = MP_CRASH_MAX_PATH;
    memcpy(image->path, p, length);
    image->path_length = (uint16_t)length;
}

static int mp_collect_images(const uint64_t *frames, int frame_count) {
    int image_count = 0;
#ifdef __linux__
    int fd = open("/proc/self/maps", O_RDONLY | O_CLOEXEC);
    if (fd < 0) return 0;
    char chunk[4096];
    size_t kept = 0;
    for (;;) {
        ssize_t n = read(fd, chunk + kept, sizeof chunk - kept);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) break;
        size_t filled = kept + (size_t)n;
        size_t line = 0;
        for (size_t i = 0; i < filled; i++) {
            if (chunk[i] != '\n') continue;
            mp_consider_mapping(chunk + line, chunk + i, frames, frame_count, &image_count);
            line = i + 1;
        }
        kept = filled - line;
        if (kept == sizeof chunk) kept = 0;  // A line longer than the buffer: skip it.
        memmove(chunk, chunk + line, kept);
    }
    close(fd);
#else
    (void)frames;
    (void)frame_count;
#endif
    return image_count;
}

static void mp_send_all(const unsigned char *bytes, size_t length) {
    size_t sent = 0;
    int waits = 0;
    while (sent < length) {
#ifdef MSG_NOSIGNAL
        ssize_t n = send(mp_crash_fd, bytes + sent, length - sent, MSG_NOSIGNAL | MSG_DONTWAIT);
#else
        ssize_t n = send(mp_crash_fd, bytes + sent, length - sent, MSG_DONTWAIT);
#endif
        if (n > 0) {
            sent += (size_t)n;
            continue;
        }
        if (n < 0 && errno == EINTR) continue;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK) && waits++ < 20) {
            struct pollfd p = {mp_crash_fd, POLLOUT, 0};
            poll(&p, 1, 100);
            continue;
        }
        return;  // The parent is gone or not reading: the signal alone will have to do.
    }
}

typedef struct {
    void **frames;
    int count;
    int capacity;
} mp_unwind_state;

static _Unwind_Reason_Code mp_unwind_step(struct _Unwind_Context *context, void *argument) {
    mp_unwind_state *state = argument;
    if (state->count >= state->capacity) return _URC_END_OF_STACK;
    state->frames[state->count++] = (void *)_Unwind_GetIP(context);
    return _URC_NO_REASON;
}

static int mp_capture(void **frames, int capacity) {
    if (_Unwind_Backtrace != NULL && _Unwind_GetIP != NULL) {
        mp_unwind_state state = {frames, 0, capacity};
        _Unwind_Backtrace(mp_unwind_step, &state);
        return state.count;
    }
#ifdef MP_HAVE_BACKTRACE
    return backtrace(frames, capacity);
#else
    return 0;
#endif
}

static void mp_report_crash(int sig, siginfo_t *info, void *context) {
    uint64_t frames[MP_CRASH_MAX_FRAMES];
    int frame_count = 0;
    uintptr_t pc = mp_context_pc(context);
    void *raw[MP_CRASH_MAX_FRAMES + 8];
    int n = mp_capture(raw, MP_CRASH_MAX_FRAMES + 8);
    // The first frames are this handler and the kernel's signal trampoline: the backtrace
    // proper starts at the interrupted instruction. If the unwinder did not get past the
    // trampoline, that instruction is all there is.
    int first = -1;
    for (int i = 0; i < n && i < 8 && pc != 0; i++) {
        if ((uintptr_t)raw[i] == pc) {
            first = i;
            break;
        }
    }
    if (first < 0) {
        if (pc != 0) frames[frame_count++] = pc;
    } else {
        for (int i = first; i < n && frame_count < MP_CRASH_MAX_FRAMES; i++) {
            frames[frame_count++] = (uint64_t)(uintptr_t)raw[i];
        }
    }
    int image_count = mp_collect_images(frames, frame_count);

    char thread_name[16] = {0};
#ifdef __linux__
    prctl(PR_GET_NAME, thread_name, 0, 0, 0);
#endif
    mp_crash_writer w = {mp_crash_buffer, 8, sizeof mp_crash_buffer};
    mp_put_u32(&w, 0x5243504du);  // "MPCR"
    mp_put_u32(&w, 1);            // version
    mp_put_u32(&w, (uint32_t)sig);
    mp_put_u32(&w, (uint32_t)(info != NULL ? info->si_code : 0));
    mp_put_u64(&w, (uint64_t)(uintptr_t)(info != NULL ? info->si_addr : NULL));
    mp_put_u32(&w, pc != 0 ? 1u : 0u);  // flags: frame 0 is the faulting instruction itself
    mp_put(&w, thread_name, 16);
    mp_put_u32(&w, (uint32_t)frame_count);
    for (int i = 0; i < frame_count; i++) mp_put_u64(&w, frames[i]);
    mp_put_u32(&w, (uint32_t)image_count);
    for (int i = 0; i < image_count; i++) {
        mp_put_u64(&w, mp_crash_images[i].start);
        mp_put_u64(&w, mp_crash_images[i].end);
        mp_put_u64(&w, mp_crash_images[i].offset);
        mp_put_u16(&w, mp_crash_images[i].path_length);
        mp_put(&w, mp_crash_images[i].path, mp_crash_images[i].path_length);
    }
    // The frame header of FramedSocket: magic, kind 4 (a crash report), no descriptors, length.
    uint32_t payload = (uint32_t)(w.length - 8);
    mp_crash_buffer[0] = 0xB5;
    mp_crash_buffer[1] = 4;
    mp_crash_buffer[2] = 0;
    mp_crash_buffer[3] = 0;
    memcpy(mp_crash_buffer + 4, &payload, 4);
    mp_send_all(mp_crash_buffer, w.length);
}

static int32_t mp_crash_thread_id(void) {
#ifdef __linux__
    return (int32_t)syscall(SYS_gettid);
#else
    return 1;  // One reporter at a time still holds; a crash inside the handler then waits 5 s.
#endif
}

static void mp_on_crash(int sig, siginfo_t *info, void *context) {
    int saved_errno = errno;
    int32_t me = mp_crash_thread_id();
    int32_t idle = 0;
    if (__atomic_compare_exchange_n(&mp_crash_reporter, &idle, me, 0, __ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE)) {
        // The unwinder may wait for the loader's lock, held by the thread that crashed: never
        // let a crash turn into a hang (after 5 s, SIGALRM ends the process instead).
        alarm(5);
        mp_report_crash(sig, info, context);
        alarm(0);
        __atomic_store_n(&mp_crash_reported, 1, __ATOMIC_RELEASE);
    } else if (idle != me) {
        // Another thread is reporting: give it time to finish before this signal kills.
        struct timespec slice = {0, 10 * 1000 * 1000};
        for (int i = 0; i < 500 && !__atomic_load_n(&mp_crash_reported, __ATOMIC_ACQUIRE); i++) nanosleep(&slice, NULL);
    }
    // Else this handler itself faulted: let the signal kill.
    int index = 0;
    while (index < MP_CRASH_SIGNAL_COUNT && mp_crash_signals[index] != sig) index++;
    if (index < MP_CRASH_SIGNAL_COUNT) {
        sigaction(sig, &mp_crash_previous[index], NULL);
    } else {
        signal(sig, SIG_DFL);
    }
    errno = saved_errno;
    // A fault raised by an instruction happens again when the handler returns, now reaching the
    // previous handler (the default: death by this signal). A signal sent (kill, raise, abort)
    // or a trap instruction that does not repeat is raised again instead.
    int repeats = info != NULL && info->si_code > 0 && sig != SIGTRAP && sig != SIGABRT;
    if (!repeats) raise(sig);
}

int mp_crash_handler_install(int report_fd) {
    mp_crash_fd = report_fd;
#ifdef MP_HAVE_BACKTRACE
    if (_Unwind_Backtrace == NULL || _Unwind_GetIP == NULL) {
        // glibc's first backtrace loads the unwinder (malloc, dlopen): never in a signal handler.
        void *warm[2];
        (void)backtrace(warm, 2);
    }
#endif
    stack_t current;
    if (sigaltstack(NULL, &current) == 0 && (current.ss_flags & SS_DISABLE)) {
        stack_t stack = {.ss_sp = mp_crash_stack, .ss_size = sizeof mp_crash_stack, .ss_flags = 0};
        sigaltstack(&stack, NULL);
    }
    struct sigaction action;
    memset(&action, 0, sizeof action);
    action.sa_sigaction = mp_on_crash;
    action.sa_flags = SA_SIGINFO | SA_ONSTACK;
    sigemptyset(&action.sa_mask);
    for (int i = 0; i < MP_CRASH_SIGNAL_COUNT; i++) {
        struct sigaction previous;
        if (sigaction(mp_crash_signals[i], &action, &previous) != 0) return errno;
        // Installed again (in a child forked from a child): keep what was there before us.
        if (!(previous.sa_flags & SA_SIGINFO) || previous.sa_sigaction != mp_on_crash) mp_crash_previous[i] = previous;
    }
    return 0;
}

void mp_crash_handler_reset_inherited(void) {
    for (int i = 0; i < MP_CRASH_SIGNAL_COUNT; i++) signal(mp_crash_signals[i], SIG_DFL);
}

// libstdc++'s demangler, when the program has it (it does wherever the Swift runtime runs on
// Linux); weak, so that a program without it still links.
extern char *__cxa_demangle(const char *mangled, char *output, size_t *length, int *status)
    __attribute__((weak));

char *mp_demangle_cxx(const char *mangled) {
    if (__cxa_demangle == NULL || strncmp(mangled, "_Z", 2) != 0) return NULL;
    int status = 0;
    char *readable = __cxa_demangle(mangled, NULL, NULL, &status);
    return status == 0 ? readable : NULL;
}
