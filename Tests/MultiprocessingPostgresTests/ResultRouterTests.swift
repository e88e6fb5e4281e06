import Synchronization
import Testing

@testable import MultiprocessingPostgres

/// The producer's side of notifications, without a database.
@Suite("ClusterPool's result router")
struct ResultRouterTests {
    @Test("a notification's ids, and the small results some of them carry")
    func parse() {
        let (ids, results) = ResultRouter.parseFinished("12,=0aff,13,14,=,15,=zz")
        #expect(ids == [12, 13, 14, 15])
        #expect(results == [12: [0x0a, 0xff], 14: []])  // 15's result is not hex: read it instead.
        // A version 2 notification: ids alone.
        #expect(ResultRouter.parseFinished("1,2").results.isEmpty)
    }

    @Test("a carried result goes to its waiter at once; the others are read, and so is one not yet awaited")
    func carriedResults() {
        let router = ResultRouter()
        let delivered = Mutex<[Int64: [UInt8]?]>([:])
        router.wait(for: [1, 2]) { row in delivered.withLock { $0[row.id] = row.result } }
        router.announced([1, 2, 3], results: [1: [7], 3: [9]])
        #expect(delivered.withLock { $0 } == [1: [7]])
        #expect(router.takeToFetch(sweep: false) == [2])
        // 3 finished before anyone here waited for it: its row is read when someone does.
        router.wait(for: [3]) { row in delivered.withLock { $0[row.id] = row.result } }
        #expect(router.takeToFetch(sweep: false) == [3])
        #expect(router.pendingCount == 2)
    }
}
