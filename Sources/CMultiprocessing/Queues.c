// Queues: the side channel that carries the descriptors of items too large for a queue's ring.
// Non-blocking sends and receives (the caller holds the queue's lock and must never sleep in
// the kernel), and peeking a message together with its descriptor.
#define _GNU_SOURCE
#include "CMultiprocessing.h"

#include <errno.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <unistd.h>

ssize_t mp_queue_send(int sock, const void *buf, size_t len, int fd) {
    return mp_sendmsg_fds(sock, buf, len, &fd, fd >= 0 ? 1 : 0, MSG_DONTWAIT);
}

ssize_t mp_queue_receive(int sock, void *buf, size_t len, int *fd, int peek) {
    int count = 0;
    int notes = 0;
    ssize_t n = mp_recvmsg_fds(sock, buf, len, fd, 1, &count, MSG_DONTWAIT | (peek ? MSG_PEEK : 0),
                               &notes);
    if (count == 0) *fd = -1;
    if (n >= 0 && (notes & MP_FDS_TRUNCATED)) {
        // The item's descriptor could not be installed here: say so, instead of passing the
        // message off as one without a descriptor (which would drop the item for good).
        if (*fd >= 0) close(*fd);
        *fd = -1;
        errno = EMFILE;
        return -1;
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
