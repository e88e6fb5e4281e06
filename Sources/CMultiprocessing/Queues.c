// Queues: the side channel that carries the descriptors of items too large for a queue's ring.
// Non-blocking sends and receives (the caller holds the queue's lock and must never sleep in
// the kernel), and peeking a message together with its descriptor.
#define _GNU_SOURCE
#include "CMultiprocessing.h"

#include <errno.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <unistd.h>

ssize_t mp_queue_send(int sock, const void *buf, size_t len, int fd) {
    struct iovec iov = {.iov_base = (void *)buf, .iov_len = len};
    struct msghdr msg = {0};
    msg.msg_iov = &iov;
    msg.msg_iovlen = 1;
    union {
        struct cmsghdr align;
        char bytes[CMSG_SPACE(sizeof(int))];
    } control;
    if (fd >= 0) {
        memset(&control, 0, sizeof control);
        msg.msg_control = control.bytes;
        msg.msg_controllen = CMSG_SPACE(sizeof(int));
        struct cmsghdr *cmsg = CMSG_FIRSTHDR(&msg);
        cmsg->cmsg_level = SOL_SOCKET;
        cmsg->cmsg_type = SCM_RIGHTS;
        cmsg->cmsg_len = CMSG_LEN(sizeof(int));
        memcpy(CMSG_DATA(cmsg), &fd, sizeof(int));
    }
    int flags = MSG_DONTWAIT;
#ifdef MSG_NOSIGNAL
    flags |= MSG_NOSIGNAL;
#endif
    ssize_t n;
    do {
        n = sendmsg(sock, &msg, flags);
    } while (n < 0 && errno == EINTR);
    return n;
}

ssize_t mp_queue_receive(int sock, void *buf, size_t len, int *fd, int peek) {
    struct iovec iov = {.iov_base = buf, .iov_len = len};
    struct msghdr msg = {0};
    union {
        struct cmsghdr align;
        char bytes[CMSG_SPACE(sizeof(int) * 8)];
    } control;
    msg.msg_iov = &iov;
    msg.msg_iovlen = 1;
    msg.msg_control = control.bytes;
    msg.msg_controllen = sizeof control.bytes;
    *fd = -1;
    int flags = MSG_DONTWAIT | (peek ? MSG_PEEK : 0);
#ifdef MSG_CMSG_CLOEXEC
    flags |= MSG_CMSG_CLOEXEC;
#endif
    ssize_t n;
    do {
        n = recvmsg(sock, &msg, flags);
    } while (n < 0 && errno == EINTR);
    if (n < 0) return n;
    for (struct cmsghdr *c = CMSG_FIRSTHDR(&msg); c != NULL; c = CMSG_NXTHDR(&msg, c)) {
        if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS) continue;
        int count = (int)((c->cmsg_len - CMSG_LEN(0)) / sizeof(int));
        int *data = (int *)CMSG_DATA(c);
        for (int i = 0; i < count; i++) {
            if (*fd < 0) *fd = data[i];
            else close(data[i]);  // Never leak a descriptor nobody asked for.
        }
    }
    return n;
}

void *mp_queue_map_readonly(int fd, uint64_t size) {
    int flags = MAP_SHARED;
#ifdef MAP_POPULATE
    flags |= MAP_POPULATE;  // One fault-in for the whole item instead of one per page.
#endif
    void *address = mmap(NULL, (size_t)size, PROT_READ, flags, fd, 0);
    return address == MAP_FAILED ? NULL : address;
}
