import Multiprocessing
import PostgresNIO

/// A finished task's row, as a producer reads it.
struct FinishedTask: Sendable {
    var id: Int64
    var state: String
    var result: [UInt8]?
    var error: [UInt8]?
    var errorKind: String?
    var errorText: String?
    var attempt: Int32
    var taskName: String
    var unknownNameTimeout: Int64

    /// The columns ``init(row:)`` reads, in order.
    static let columns =
        "id, state, result, error, error_kind, error_text, attempt, task_name, unknown_name_timeout_ms"

    /// Reads the rows of a query that selected ``columns``.
    static func read(_ rows: PostgresRowSequence) async throws -> [FinishedTask] {
        var tasks: [FinishedTask] = []
        for try await (id, state, result, error, kind, text, attempt, name, timeout) in rows.decode(
            (Int64, String, ByteBuffer?, ByteBuffer?, String?, String?, Int32, String, Int64).self)
        {
            tasks.append(
                FinishedTask(
                    id: id, state: state, result: result?.bytes, error: error?.bytes, errorKind: kind,
                    errorText: text, attempt: attempt, taskName: name, unknownNameTimeout: timeout))
        }
        return tasks
    }

    /// The typed result: the decoded output, or the error to throw.
    func outcome<Output: Decodable>(as type: Output.Type) -> Result<Output, any Error> {
        switch state {
        case "succeeded":
            do {
                return .success(try BinaryDecoder().decode(Output.self, from: result ?? []))
            } catch {
                return .failure(ClusterError.undecodableResult(task: id, reason: "\(error)"))
            }
        case "cancelled":
            return .failure(PoolError.cancelled)
        default:
            return .failure(failure)
        }
    }

    /// The error of a failed task.
    var failure: any Error {
        if let error, !error.isEmpty { return ErrorEnvelope.error(from: error, task: id) }
        switch errorKind {
        case "lease_expired": return ClusterError.leaseExpired(task: id, attempts: Int(attempt))
        case "unknown_task_name":
            return ClusterError.unknownTaskName(taskName, waited: .milliseconds(unknownNameTimeout))
        case "cancelled": return PoolError.cancelled
        default:
            return RemoteError(
                typeName: "task \(id)", errorDescription: errorText ?? "failed", processName: "worker", pid: 0
            )
        }
    }
}

extension FinishedTask {
    /// A succeeded task whose result came in its notification (the other fields matter only
    /// for failures).
    init(succeeded id: Int64, result: [UInt8]) {
        self.init(
            id: id, state: "succeeded", result: result, error: nil, errorKind: nil, errorText: nil,
            attempt: 0, taskName: "", unknownNameTimeout: 0)
    }
}
