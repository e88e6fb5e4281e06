// The resource tracker: a small process that unlinks the named shared-memory segments its
// creator registered and did not unregister, once the creator is gone (even SIGKILLed).
//
// It runs in a spawned copy of the binary, from the constructor, so it is single-threaded and
// forking is safe. It forks once more and the copy exits, so the tracker is re-parented away
// from its creator (nothing that kills the creator's descendants reaches it), and it starts a
// session of its own (no signal sent to the creator's process group or terminal reaches it).
#define _GNU_SOURCE
#include "CMultiprocessing.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <unistd.h>
#ifdef __linux__
#include <sys/prctl.h>
#endif

#ifndef MSG_NOSIGNAL
#define MSG_NOSIGNAL 0
#endif

void mp_resource_tracker_serve(int fd) {
    pid_t tracker = fork();
    if (tracker < 0) _exit(70);
    if (tracker > 0) _exit(0);  // The creator reaps this copy; the tracker is orphaned.
    setsid();
    // Ctrl-C, a terminal closing, or `kill` of the creator's group: the creator dies, and
    // cleaning up after it is exactly our job.
    signal(SIGINT, SIG_IGN);
    signal(SIGTERM, SIG_IGN);
    signal(SIGHUP, SIG_IGN);
    signal(SIGPIPE, SIG_IGN);
    // Hold no pipe of the creator's open (a `| tee` would wait for us) and no directory.
    int null = open("/dev/null", O_RDWR | O_CLOEXEC);
    if (null >= 0) {
        dup2(null, 0);
        dup2(null, 1);
        dup2(null, 2);
        if (null > 2) close(null);
    }
    if (chdir("/") != 0) {
    }
#ifdef __linux__
    prctl(PR_SET_NAME, "mp-tracker", 0, 0, 0);
#endif
    pid_t self = getpid();
    (void)!send(fd, &self, sizeof self, MSG_NOSIGNAL);

    // Messages: 'R' or 'U' followed by a name ("/..."), one per SOCK_SEQPACKET record.
    char **names = NULL;
    size_t count = 0, capacity = 0;
    char buf[512];
    for (;;) {
        ssize_t n = recv(fd, buf, sizeof buf - 1, 0);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) break;  // Every copy of the creator's end is closed: it has ended.
        buf[n] = 0;
        if (n < 3 || buf[1] != '/' || strlen(buf) != (size_t)n) continue;
        if (buf[0] == 'R') {
            if (count == capacity) {
                size_t grown = capacity == 0 ? 16 : capacity * 2;
                char **more = realloc(names, grown * sizeof *names);
                if (more == NULL) continue;
                names = more;
                capacity = grown;
            }
            char *copy = strdup(buf + 1);
            if (copy != NULL) names[count++] = copy;
        } else if (buf[0] == 'U') {
            for (size_t i = 0; i < count; i++) {
                if (strcmp(names[i], buf + 1) == 0) {
                    free(names[i]);
                    names[i] = names[--count];
                    break;
                }
            }
        }
    }
    for (size_t i = 0; i < count; i++) shm_unlink(names[i]);
    _exit(0);
}
