#if canImport(Glibc)
    import Glibc
#endif

/// Harness `decoder`: hostile bytes for `BinaryDecoder`. The first byte picks the type, the rest
/// is the input. Decoding runs on a thread with a small stack (128 KiB unless
/// `MP_FUZZ_STACK_KIB` says otherwise), so that nesting which would overflow a small stack
/// crashes here. Whatever decodes must re-encode, and that encoding must decode again (and,
/// for synthesized `Codable`, re-encode to the same bytes).
enum DecoderHarness {
    struct Target {
        let name: String
        let run: (UnsafeRawBufferPointer) -> Void
        let sample: [[UInt8]]
    }

    /// How a decoded value that re-encoded and decoded again is compared with the first.
    enum Check {
        /// Not at all (a hand-written `init(from:)` that reads differently than it writes).
        case decodes
        /// The second encoding has the same bytes as the first. Not for dictionaries, whose
        /// order depends on the order of insertion.
        case sameBytes
    }

    static func target<T: Codable>(_ type: T.Type, check: Check = .sameBytes, samples: [T]) -> Target {
        Target(
            name: "\(T.self)",
            run: { bytes in
                guard let (value, again) = roundTrip(T.self, bytes) else { return }
                if check == .sameBytes
                    && (try? BinaryEncoder().encode(again)) != (try? BinaryEncoder().encode(value))
                {
                    fatalError("re-encoding a decoded \(T.self) is not stable")
                }
            },
            sample: samples.map { try! BinaryEncoder().encode($0) })
    }

    /// For dictionaries of comparable values: the value that comes back equals the first.
    static func target<T: Codable & Equatable>(equal type: T.Type, samples: [T]) -> Target {
        Target(
            name: "\(T.self)",
            run: { bytes in
                guard let (value, again) = roundTrip(T.self, bytes) else { return }
                if value != again { fatalError("a decoded \(T.self) changed through encoding") }
            },
            sample: samples.map { try! BinaryEncoder().encode($0) })
    }

    nonisolated(unsafe) static let targets: [Target] = [
        target(Document.self, check: .decodes, samples: [sampleDocument]),
        target(
            Shape.self,
            samples: [
                .circle(radius: 2), .group(.empty, [.labeled("a", -1), .polygon([Point(x: 1, y: 2)])]),
            ]),
        target(Tree.self, samples: [.node(.leaf(1), .maybe(.node(.leaf(2), .maybe(nil))))]),
        target(
            Node.self,
            samples: [
                Node(
                    name: "root",
                    children: [
                        Node(name: "a", children: []),
                        Node(name: "b", children: [Node(name: "c", children: [])]),
                    ])
            ]),
        target(Linked.self, samples: [Linked(value: 1, next: Linked(value: 2, next: nil))]),
        target(Derived.self, samples: [Derived(id: 4, label: "four"), Derived(id: -1, label: nil)]),
        target(
            HandWritten.self, check: .decodes,
            samples: [HandWritten(keys: [], numbers: [1, -2, 3], texts: ["x", nil], inner: ["k": 1.5])]),
        target([Int].self, samples: [[0, -1, Int.max]]),
        target([Double].self, samples: [[1.5, -0.0, .nan, .infinity]]),
        target([UInt8].self, samples: [[0, 1, 255]]),
        target([Float].self, samples: [[1, -2]]),
        target([Int32].self, samples: [[7, -7]]),
        target([UInt64].self, samples: [[1 << 63]]),
        target([Bool].self, samples: [[true, false]]),
        target([[Int]].self, samples: [[[1], [], [2, 3]]]),
        target([String].self, samples: [["", "héllo", "🦊"]]),
        target([Int?].self, samples: [[1, nil, 3]]),
        target(String.self, samples: ["text", ""]),
        target(String??.self, samples: [.some(nil), .some("x")]),
        target(Int?.self, samples: [nil, 42]),
        target(equal: [String: Int].self, samples: [["a": 1, "b": -2]]),
        target(equal: [Int: String].self, samples: [[1: "one", -5: "minus five"]]),
        target([String: [String: Double]].self, check: .decodes, samples: [["outer": ["inner": 0.25]]]),
        target(equal: [Point: [Bool]].self, samples: [[Point(x: 0, y: 1): [true]]]),
        target(ContiguousArray<Point>.self, samples: [[Point(x: 3, y: 4)]]),
        target(UInt128.self, samples: [UInt128.max]),
    ]

    nonisolated(unsafe) static let sampleDocument = Document(
        title: "report", version: 3, ratio: 0.5, flags: [true, false], tags: ["a": [1, nil], "b": []],
        origin: Point(x: -3, y: 4), shapes: [.circle(radius: 1), .empty, .rectangle(width: 2, height: 3)],
        raw: [0, 1, 2, 255], big: -(1 << 100), unsigned: .max, nested: [[1, -1], []],
        byPoint: [Point(x: 1, y: 1): "one"])

    /// The value `bytes` decode to, and what it decodes to after encoding; nil if `bytes` do
    /// not decode.
    static func roundTrip<T: Codable>(_: T.Type, _ bytes: UnsafeRawBufferPointer) -> (T, T)? {
        guard let value = try? BinaryDecoder().decode(T.self, from: bytes) else { return nil }
        let first: [UInt8]
        do {
            first = try BinaryEncoder().encode(value)
        } catch {
            fatalError("a decoded \(T.self) does not re-encode: \(error)")
        }
        let again: T
        do {
            again = try BinaryDecoder().decode(T.self, from: first)
        } catch {
            fatalError("a re-encoded \(T.self) does not decode: \(error)")
        }
        return (value, again)
    }

    static func run(_ data: UnsafeRawBufferPointer) {
        guard let selector = data.first else { return }
        let target = targets[Int(selector) % targets.count]
        let input = UnsafeRawBufferPointer(rebasing: data[1...])
        SmallStack.shared.run { target.run(input) }
    }

    static func seeds() -> [[UInt8]] {
        var seeds: [[UInt8]] = []
        for (index, target) in targets.enumerated() {
            for sample in target.sample { seeds.append([UInt8(index)] + sample) }
        }
        // Nesting right at the limit and just past it, where the depth check bites.
        var permissive = BinaryEncoder()
        permissive.maximumDepth = 100
        let nodeIndex = UInt8(targets.firstIndex { $0.name == "Node" }!)
        var deep = Node(name: "", children: [])
        for _ in 0..<16 { deep = Node(name: "", children: [deep]) }
        seeds.append([nodeIndex] + (try! permissive.encode(deep)))
        return seeds
    }
}

/// A thread with a small stack that runs the decoder harness's inputs one at a time.
final class SmallStack: @unchecked Sendable {
    static let shared = SmallStack()

    private var work: (() -> Void)?
    private var start = sem_t()
    private var done = sem_t()

    private init() {
        sem_init(&start, 0, 0)
        sem_init(&done, 0, 0)
        let kib = Int(String(cString: getenv("MP_FUZZ_STACK_KIB") ?? strdup("128"))) ?? 128
        var attributes = pthread_attr_t()
        pthread_attr_init(&attributes)
        pthread_attr_setstacksize(&attributes, kib << 10)
        var thread = pthread_t()
        let rc = pthread_create(
            &thread, &attributes,
            { raw in
                Unmanaged<SmallStack>.fromOpaque(raw!).takeUnretainedValue().loop()
                return nil
            }, Unmanaged.passRetained(self).toOpaque())
        precondition(rc == 0, "cannot start the small-stack thread")
        pthread_attr_destroy(&attributes)
    }

    func run(_ body: @escaping () -> Void) {
        work = body
        sem_post(&start)
        while sem_wait(&done) != 0 {}
        work = nil
    }

    private func loop() {
        // A signal stack of its own, so that an overflow is reported (libFuzzer's handler
        // writes the input out) instead of killing the process silently.
        let size = 64 << 10
        var alternate = stack_t()
        alternate.ss_sp = UnsafeMutableRawPointer.allocate(byteCount: size, alignment: 16)
        alternate.ss_size = size
        sigaltstack(&alternate, nil)
        while true {
            while sem_wait(&start) != 0 {}
            work?()
            sem_post(&done)
        }
    }
}
