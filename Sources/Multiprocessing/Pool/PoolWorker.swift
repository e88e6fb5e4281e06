#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

/// The pool's end of a worker's job socket, `Codable` so it travels inside ``PoolWorker``.
struct WorkerChannel: Codable, Sendable {
    let socket: FramedSocket

    init(socket: FramedSocket) { self.socket = socket }

    func encode(to encoder: any Encoder) throws {
        try MessageIO.encodeHandle(socket, "WorkerChannel", to: encoder)
    }

    init(from decoder: any Decoder) throws {
        socket = try MessageIO.decodeHandle("WorkerChannel", from: decoder)
    }
}

/// The worker side of a pool: an ordinary ``ProcessTask`` whose `run` is the job loop, so a
/// worker is launched, watched and reaped like any child.
struct PoolWorker: ProcessTask {
    var channel: WorkerChannel
    var initializerType: String?
    var initializerPayload: [UInt8]?

    typealias Runner = @Sendable ([UInt8]) async -> (PoolWire.Status, [UInt8])

    func run() async throws {
        let socket = channel.socket
        if let initializerType, let initializerPayload {
            guard let type = TypeIdentity.resolve(initializerType) as? any ProcessTask.Type else {
                throw ProcessError.unsupportedTaskType(
                    typeName: initializerType, reason: "no such ProcessTask in this binary")
            }
            try await Self.runInitializer(type, initializerPayload)
        }
        try await socket.send(.message, [PoolWire.ready])
        var runners: [UInt64: Result<Runner, ErrorReport>] = [:]
        var out: [UInt8] = []
        while true {
            let received: Result<Frame, ChannelError>
            do {
                received = .success(try await socket.receive())
            } catch {
                received = .failure(error)
            }
            guard case .success(let frame) = received else {
                return  // The pool is gone or done with us.
            }
            var reader = PoolReader(frame.payload)
            switch try reader.byte() {
            case PoolWire.install:
                let id = try reader.varint()
                let typeName = try reader.string()
                let payload = try reader.data()
                runners[id] = Self.makeRunner(typeName: typeName, payload: payload)
            case PoolWire.jobs:
                let count = try reader.count()
                out.removeAll(keepingCapacity: true)
                out.append(PoolWire.results)
                var answered = 0
                let countAt = out.count
                out.append(contentsOf: [0, 0, 0, 0])  // Patched with the number of results.
                var lastFlush = ContinuousClock.now
                for _ in 0..<count {
                    let jobID = try reader.varint()
                    let functionID = try reader.varint()
                    let input = try reader.data()
                    let (status, bytes): (PoolWire.Status, [UInt8])
                    switch runners[functionID] {
                    case .success(let runner): (status, bytes) = await runner(input)
                    case .failure(let report):
                        (status, bytes) = (.failed, (try? TaskCoding.encode(report)) ?? [])
                    case nil:
                        let report = ErrorReport(
                            PoolError.protocolError("function \(functionID) was never installed"))
                        (status, bytes) = (.failed, (try? TaskCoding.encode(report)) ?? [])
                    }
                    WireWriter.appendVarint(jobID, to: &out)
                    out.append(status.rawValue)
                    PoolWire.appendBytes(bytes, to: &out)
                    answered += 1
                    // A slow job's result goes out at once, so that a crash in the next one is
                    // blamed on the right job and finished work is never redone.
                    if ContinuousClock.now - lastFlush > .milliseconds(1) {
                        try await Self.send(&out, answered: answered, countAt: countAt, on: socket)
                        answered = 0
                        lastFlush = ContinuousClock.now
                    }
                }
                if answered > 0 {
                    try await Self.send(&out, answered: answered, countAt: countAt, on: socket)
                }
            case PoolWire.shutdown:
                return
            case let other:
                throw PoolError.protocolError("unknown message \(other) from the pool")
            }
        }
    }

    private static func send(_ out: inout [UInt8], answered: Int, countAt: Int, on socket: FramedSocket)
        async throws
    {
        withUnsafeBytes(of: UInt32(answered).littleEndian) { raw in
            for i in 0..<4 { out[countAt + i] = raw[i] }
        }
        try await socket.send(.message, out)
        out.removeSubrange((countAt + 4)...)
    }

    private static func runInitializer<T: ProcessTask>(_ type: T.Type, _ payload: [UInt8]) async throws {
        let task = try TaskCoding.decode(T.self, from: payload)
        _ = try await task.run()
    }

    private static func makeRunner(typeName: String, payload: [UInt8]) -> Result<Runner, ErrorReport> {
        guard let type = TypeIdentity.resolve(typeName) as? any ProcessFunction.Type else {
            return .failure(
                ErrorReport(
                    ProcessError.unsupportedTaskType(
                        typeName: typeName, reason: "this binary has no ProcessFunction of that name")))
        }
        return runner(for: type, payload)
    }

    private static func runner<F: ProcessFunction>(for type: F.Type, _ payload: [UInt8]) -> Result<
        Runner, ErrorReport
    > {
        let function: F
        do {
            function = try TaskCoding.decode(F.self, from: payload)
        } catch {
            return .failure(ErrorReport(ProcessError.codec(error)))
        }
        return .success({ bytes in await runChunk(function, bytes) })
    }

    /// Runs `function` over a chunk of inputs. Every item gets a result: a thrown error stops
    /// only its own item.
    static func runChunk<F: ProcessFunction>(_ function: F, _ bytes: [UInt8]) async -> (
        PoolWire.Status, [UInt8]
    ) {
        let inputs: [F.Input]
        do {
            inputs = try TaskCoding.decode([F.Input].self, from: bytes)
        } catch {
            return (.failed, (try? TaskCoding.encode(ErrorReport(ProcessError.codec(error)))) ?? [])
        }
        var outputs: [F.Output] = []
        outputs.reserveCapacity(inputs.count)
        var failures: [(index: Int, report: ErrorReport)] = []
        var next = 0
        while next < inputs.count {
            let before = outputs.count
            do {
                try await function._callEach(inputs[next...], into: &outputs)
                next = inputs.count
            } catch {
                // The item after the last appended one threw; carry on after it.
                let failed = next + (outputs.count - before)
                failures.append((failed, ErrorReport(error)))
                next = failed + 1
            }
        }
        do {
            if failures.isEmpty { return (.values, try TaskCoding.encode(outputs)) }
            var outcomes: [ItemOutcome<F.Output>] = []
            outcomes.reserveCapacity(inputs.count)
            var values = outputs.makeIterator()
            var pending = failures.makeIterator()
            var failure = pending.next()
            for index in inputs.indices {
                if let current = failure, current.index == index {
                    outcomes.append(.error(current.report))
                    failure = pending.next()
                } else if let value = values.next() {
                    outcomes.append(.value(value))
                }
            }
            return (.mixed, try TaskCoding.encode(outcomes))
        } catch {
            return (.failed, (try? TaskCoding.encode(ErrorReport(ProcessError.codec(error)))) ?? [])
        }
    }
}
