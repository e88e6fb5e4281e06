import Multiprocessing

#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

/// A failed attempt's error as it is stored in a task's row, in the library's wire codec: the
/// error value itself when its type is `Codable` (and the reader's binary has it), the pool's
/// and the cluster's own errors field by field, and anything else as a `RemoteError`.
enum ErrorEnvelope: Codable, Sendable {
    /// A `Codable` error thrown by the function.
    case value(typeName: String, mangledName: String, payload: [UInt8], description: String, pid: Int32)
    /// Any other thrown error.
    case remote(typeName: String, description: String, processName: String, pid: Int32)
    /// A ``PoolError`` from the worker host's local pool.
    case pool(PoolErrorRecord)
    /// A ``ClusterError``.
    case cluster(ClusterErrorRecord)

    /// Describes `error` for the queue.
    init(_ error: any Error) {
        if let pool = error as? PoolError {
            self = .pool(PoolErrorRecord(pool))
        } else if let cluster = error as? ClusterError {
            self = .cluster(ClusterErrorRecord(cluster))
        } else if let remote = error as? RemoteError {
            self = .remote(
                typeName: remote.typeName, description: remote.errorDescription,
                processName: remote.processName,
                pid: remote.pid)
        } else if let codable = error as? any Error & Codable,
            let mangled = _mangledTypeName(type(of: codable)),
            let payload = try? Self.encode(codable)
        {
            self = .value(
                typeName: String(reflecting: type(of: codable)), mangledName: mangled, payload: payload,
                description: String(describing: error), pid: getpid())
        } else {
            self = .remote(
                typeName: String(reflecting: type(of: error)), description: String(describing: error),
                processName: CurrentProcess.name, pid: getpid())
        }
    }

    private static func encode<E: Encodable>(_ value: E) throws(CodecError) -> [UInt8] {
        try BinaryEncoder().encode(value)
    }

    private static func decode<E: Error & Decodable>(_ type: E.Type, _ bytes: [UInt8]) -> (any Error)? {
        try? BinaryDecoder().decode(type, from: bytes)
    }

    /// The error to throw at the reader.
    var error: any Error {
        switch self {
        case .value(let typeName, let mangledName, let payload, let description, let pid):
            if let type = _typeByName(mangledName) as? any (Error & Decodable).Type,
                let error = Self.decode(type, payload)
            {
                return error
            }
            return RemoteError(
                typeName: typeName, errorDescription: description, processName: "worker", pid: pid)
        case .remote(let typeName, let description, let processName, let pid):
            return RemoteError(
                typeName: typeName, errorDescription: description, processName: processName, pid: pid)
        case .pool(let record): return record.error
        case .cluster(let record): return record.error
        }
    }

    /// The stored bytes.
    var bytes: [UInt8] { (try? BinaryEncoder().encode(self)) ?? [] }

    /// Reads stored bytes.
    static func error(from bytes: [UInt8], task: Int64) -> any Error {
        do {
            return try BinaryDecoder().decode(ErrorEnvelope.self, from: bytes).error
        } catch {
            return ClusterError.undecodableResult(task: task, reason: "its error: \(error)")
        }
    }

    /// `true` when the attempt killed the process running it (the poison rule counts these).
    var killedWorker: Bool {
        if case .pool(.workerLost) = self { return true }
        return false
    }
}

/// ``PoolError``, field by field.
enum PoolErrorRecord: Codable, Sendable {
    case workerLost(WorkerLossRecord)
    case timedOut(task: String, afterNanoseconds: Int64, pid: Int32)
    case memoryLimitExceeded(task: String, residentBytes: Int, limit: Int, pid: Int32)
    case other(String)

    init(_ error: PoolError) {
        switch error {
        case .workerLost(let loss): self = .workerLost(WorkerLossRecord(loss))
        case .timedOut(let task, let after, let pid):
            self = .timedOut(task: task, afterNanoseconds: after.nanoseconds, pid: pid)
        case .memoryLimitExceeded(let task, let resident, let limit, let pid):
            self = .memoryLimitExceeded(task: task, residentBytes: resident, limit: limit, pid: pid)
        default: self = .other(error.description)
        }
    }

    var error: any Error {
        switch self {
        case .workerLost(let record): PoolError.workerLost(record.loss)
        case .timedOut(let task, let after, let pid):
            PoolError.timedOut(task: task, after: .nanoseconds(after), pid: pid)
        case .memoryLimitExceeded(let task, let resident, let limit, let pid):
            PoolError.memoryLimitExceeded(task: task, residentBytes: resident, limit: limit, pid: pid)
        case .other(let text):
            RemoteError(
                typeName: "Multiprocessing.PoolError", errorDescription: text, processName: "worker", pid: 0)
        }
    }
}

/// ``WorkerLoss`` and its crash report, field by field.
struct WorkerLossRecord: Codable, Sendable {
    struct Frame: Codable, Sendable {
        var address: UInt64
        var symbol: String?
        var offset: UInt64?
        var image: String?
    }

    var task: String
    var pid: Int32
    var exitCode: Int32?
    var signal: Int32?
    var standardErrorTail: [String]
    var workersKilled: Int
    var crashSignal: Int32?
    var faultAddress: UInt64?
    var threadName: String?
    var frames: [Frame]?
    var crashingFrameIndex: Int?

    init(_ loss: WorkerLoss) {
        task = loss.task
        pid = loss.pid
        switch loss.status {
        case .exited(let code): exitCode = code
        case .signaled(let signal): self.signal = signal.rawValue
        }
        standardErrorTail = loss.standardErrorTail
        workersKilled = loss.workersKilled
        if let report = loss.crashReport {
            crashSignal = report.signal.rawValue
            faultAddress = report.faultAddress
            threadName = report.threadName
            frames = report.frames.map {
                Frame(address: $0.address, symbol: $0.symbol, offset: $0.offset, image: $0.image)
            }
            crashingFrameIndex = report.crashingFrameIndex
        }
    }

    var loss: WorkerLoss {
        let status: ExitStatus = signal.map { .signaled(Signal(rawValue: $0)) } ?? .exited(exitCode ?? 0)
        var report: CrashReport?
        if let crashSignal, let frames {
            report = CrashReport(
                signal: Signal(rawValue: crashSignal), faultAddress: faultAddress,
                threadName: threadName ?? "",
                frames: frames.map {
                    CrashFrame(address: $0.address, symbol: $0.symbol, offset: $0.offset, image: $0.image)
                },
                crashingFrameIndex: crashingFrameIndex)
        }
        return WorkerLoss(
            task: task, pid: pid, status: status, standardErrorTail: standardErrorTail,
            workersKilled: workersKilled,
            crashReport: report)
    }
}

/// ``ClusterError``, field by field (its cases that a worker stores).
enum ClusterErrorRecord: Codable, Sendable {
    case unknownTaskName(String, waitedNanoseconds: Int64)
    case undecodablePayload(task: Int64, taskName: String, reason: String)
    case leaseExpired(task: Int64, attempts: Int)
    case other(String)

    init(_ error: ClusterError) {
        switch error {
        case .unknownTaskName(let name, let waited):
            self = .unknownTaskName(name, waitedNanoseconds: waited.nanoseconds)
        case .undecodablePayload(let task, let name, let reason):
            self = .undecodablePayload(task: task, taskName: name, reason: reason)
        case .leaseExpired(let task, let attempts): self = .leaseExpired(task: task, attempts: attempts)
        default: self = .other(error.description)
        }
    }

    var error: any Error {
        switch self {
        case .unknownTaskName(let name, let waited):
            ClusterError.unknownTaskName(name, waited: .nanoseconds(waited))
        case .undecodablePayload(let task, let name, let reason):
            ClusterError.undecodablePayload(task: task, taskName: name, reason: reason)
        case .leaseExpired(let task, let attempts): ClusterError.leaseExpired(task: task, attempts: attempts)
        case .other(let text): ClusterError.database(text)
        }
    }
}

extension Duration {
    /// Whole nanoseconds (saturating).
    var nanoseconds: Int64 {
        let (seconds, attoseconds) = components
        let (scaled, overflow) = seconds.multipliedReportingOverflow(by: 1_000_000_000)
        return overflow ? (seconds < 0 ? .min : .max) : scaled &+ attoseconds / 1_000_000_000
    }

    /// Whole milliseconds (saturating).
    var milliseconds: Int64 { nanoseconds / 1_000_000 }
}
