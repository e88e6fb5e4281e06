import Multiprocessing
import MultiprocessingPostgres

#if canImport(Glibc)
    import Glibc
#endif

/// The seed's CPU-bound job as a cluster function (mp-demo's prime count): the primes in block
/// `block` of `blockSize` numbers. Each run appends `"<block> <worker pid>"` to `log`, so that
/// the producer can count executions (at least once) against results (exactly once).
///
/// Its queue name is explicit, so that another program (the tests' producer) can submit it by
/// declaring a type of the same name and shape.
struct CountPrimes: ProcessFunction, ClusterTaskNaming {
    static var clusterTaskName: String { "demo.count-primes.v1" }

    var blockSize: Int
    var log: String

    /// One block's answer and the worker host that gave it.
    struct Answer: Codable, Sendable {
        var block: Int
        var primes: Int
        /// The worker host: the parent of the local pool process that ran the block.
        var worker: Int32
    }

    func callAsFunction(_ block: Int) async throws -> Answer {
        let line = Array("\(block) \(getppid())\n".utf8)
        let fd = open(log, O_WRONLY | O_APPEND | O_CREAT, 0o644)
        if fd >= 0 {
            _ = line.withUnsafeBytes { write(fd, $0.baseAddress, $0.count) }
            close(fd)
        }
        var count = 0
        for n in (block * blockSize)..<((block + 1) * blockSize) where Self.isPrime(n) { count += 1 }
        return Answer(block: block, primes: count, worker: getppid())
    }

    static func isPrime(_ n: Int) -> Bool {
        if n < 2 { return false }
        if n < 4 { return true }
        if n % 2 == 0 { return false }
        var d = 3
        while d * d <= n {
            if n % d == 0 { return false }
            d += 2
        }
        return true
    }

    /// The primes below `limit` by a sieve, per block: what the cluster's answers must equal.
    static func sieve(blocks: Int, blockSize: Int) -> [Int] {
        let limit = blocks * blockSize
        var composite = [Bool](repeating: false, count: limit)
        var counts = [Int](repeating: 0, count: blocks)
        var n = 2
        while n < limit {
            if !composite[n] {
                counts[n / blockSize] += 1
                var multiple = n * n
                while multiple < limit {
                    composite[multiple] = true
                    multiple += n
                }
            }
            n += 1
        }
        return counts
    }
}
