import Multiprocessing

// The seeds' Manager programs: a list changed by a child, and a dictionary plus a list shared
// with several children.

/// CPython's `f(l)`: `l[0] = 100`.
struct SetFirstElement: ProcessTask {
    var list: SharedList<Int>
    func run() async throws {
        try list.replaceElement(at: 0, with: 100)
    }
}

/// CPython's `f(d, l)` for worker `number`: records a result under its name, counts into a shared
/// total atomically, and appends its number to the list of workers finished.
struct RecordResult: ProcessTask {
    var results: SharedDictionary<String, Int>
    var finished: SharedList<Int>
    var number: Int
    func run() async throws {
        try results.updateValue(number * number, forKey: "square of \(number)")
        try results.update("total", default: 0) { $0 += number }
        try finished.append(number)
    }
}

let managerExamples: [Example] = [
    (
        "manager-list", "a Manager list [1, 2, 3] changed by a child to [100, 2, 3]",
        {
            let manager = Manager()
            let list = try manager.list([1, 2, 3])
            say("before: \(try list.snapshot)")
            let child = try ChildProcess(SetFirstElement(list: list))
            try await child.start()
            try await child.value
            say("after:  \(try list.snapshot)")
        }
    ),
    (
        "manager-dict-list", "a dictionary and a list shared with four children",
        {
            let manager = Manager()
            let results = try manager.dictionary([String: Int].self)
            let finished = try manager.list([Int].self)
            let children = try (0..<4).map { number in
                try ChildProcess(RecordResult(results: results, finished: finished, number: number))
            }
            for child in children { try await child.start() }
            for child in children { try await child.value }
            for (key, value) in try results.snapshot.sorted(by: { $0.key < $1.key }) {
                say("  \(key): \(value)")
            }
            say("workers in the order they finished: \(try finished.snapshot)")
            try finished.modify { $0.sort(by: >) }  // CPython's l.reverse() on the sorted list, atomically
            say("sorted, largest first: \(try finished.snapshot)")
        }
    ),
]
