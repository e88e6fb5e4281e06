import BenchSupport
import Multiprocessing

// Manager: a child setting and getting keys of a shared dictionary, against a CPython child
// doing the same on `Manager().dict()`. Each child times its own loop (after a warm-up), so
// process start-up is not counted on either side.

/// Sets `count` keys (`d[i] = i`), or gets keys of a dictionary holding 0..<1000
/// (`d[i % 1000]`) `count` times; returns operations per second.
struct DictionaryClient: ProcessTask {
    var dictionary: SharedDictionary<Int, Int>
    var count: Int
    var gets: Bool
    func run() async throws -> Double {
        if gets {
            var sum = 0
            for i in 0..<1000 { sum &+= try dictionary.value(forKey: i) ?? 0 }
            let start = ContinuousClock.now
            for i in 0..<count { sum &+= try dictionary.value(forKey: i % 1000) ?? 0 }
            let elapsed = seconds(ContinuousClock.now - start)
            precondition(sum == 999 * 1000 / 2 * (1 + count / 1000), "wrong values read")
            return Double(count) / elapsed
        }
        for i in 0..<1000 { dictionary[-i - 1] = i }
        let start = ContinuousClock.now
        for i in 0..<count { dictionary[i] = i }
        return Double(count) / seconds(ContinuousClock.now - start)
    }
}

/// Operations per second of a child on a fresh shared dictionary (median of three children).
func managerDictionary(gets: Bool, count: Int) async throws -> Double {
    var rates: [Double] = []
    for _ in 0..<3 {
        let dictionary = try Manager().dictionary([Int: Int].self)
        if gets { try dictionary.update(with: Dictionary(uniqueKeysWithValues: (0..<1000).map { ($0, $0) })) }
        let child = try ChildProcess(DictionaryClient(dictionary: dictionary, count: count, gets: gets))
        try await child.start()
        rates.append(try await child.value)
        let keys = try dictionary.count
        precondition(keys == (gets ? 1000 : count + 1000), "lost keys")
    }
    return median(rates)
}

let managerCatalogue: [CatalogueEntry] = [
    ("manager_dict_set", "ops/s", "higher", { try await managerDictionary(gets: false, count: 500_000) }),
    ("manager_dict_get", "ops/s", "higher", { try await managerDictionary(gets: true, count: 2_000_000) }),
]

extension PythonBaseline {
    static let managerSnippet = #"""
        def _manager_dict_client(d, n, gets, out):
            if gets:
                for i in range(1000): d[i]
                t = time.perf_counter()
                for i in range(n): d[i % 1000]
            else:
                for i in range(1000): d[-i - 1] = i
                t = time.perf_counter()
                for i in range(n): d[i] = i
            out.value = n / (time.perf_counter() - t)

        def manager_dict(gets, n):
            rates = []
            with mp.Manager() as m:
                for _ in range(3):
                    d = m.dict()
                    if gets: d.update({i: i for i in range(1000)})
                    out = mp.Value('d', 0.0)
                    p = mp.Process(target=_manager_dict_client, args=(d, n, gets, out)); p.start(); p.join()
                    rates.append(out.value)
            return statistics.median(rates)

        BENCH["manager_dict_set"] = lambda: manager_dict(False, 20_000)
        BENCH["manager_dict_get"] = lambda: manager_dict(True, 20_000)
        """#
}
