import CMultiprocessing
import Dispatch
import Glibc
import Synchronization
import Testing

@testable import Multiprocessing

@Suite("Queues: the side channel for large items")
struct QueueSideChannelTests {
    @Test("a malformed message on the side channel costs no large item behind it")
    func malformedMessageIsDroppedAlone() throws {
        let queue = try ProcessQueue<[UInt8]>(ringBytes: 4096)
        // Not one of the queue's messages: 8 bytes, no descriptor.
        let junk: [UInt64] = [42]
        let sent = try junk.withUnsafeBytes {
            try Syscall.send(queue.core.sockets.sender, $0.baseAddress, $0.count, flags: Int32(MSG_DONTWAIT))
        }
        guard case .processed(8) = sent else {
            Issue.record("the junk message was not sent whole")
            return
        }
        let large = [UInt8](repeating: 7, count: 10_000)
        try queue.putNowait(large)
        #expect(try queue.getNowait() == large)
        #expect(queue.core.skippedItems == 0)
    }
}
