import MultiprocessingPostgres

#if canImport(FoundationEssentials)
    import FoundationEssentials
#else
    import Foundation
#endif

/// What the commands print: the queue's figures as JSON objects (`--json`) or as tables.
enum Report {
    /// One queue, as JSON.
    struct Queue: Encodable {
        var name: String
        var counts: [String: Int]
        var oldestWaitingSeconds: Double?
        var finishedLastMinute: Int

        init(_ figures: ClusterQueueFigures) {
            name = figures.name
            counts = Dictionary(
                uniqueKeysWithValues: ClusterTaskState.allCases.map { ($0.rawValue, figures.counts[$0] ?? 0) }
            )
            oldestWaitingSeconds = figures.oldestWaiting.map(seconds)
            finishedLastMinute = figures.finishedLastMinute
        }
    }

    /// One worker, as JSON.
    struct Worker: Encodable {
        var id: String
        var host: String
        var pid: Int32
        var concurrency: Int
        var queues: [String]
        var taskNames: [String]
        var secondsSinceHeartbeat: Double
        var live: Bool
        var stopping: Bool
        var tasksHeld: Int

        init(_ figures: ClusterWorkerFigures) {
            id = figures.id
            host = figures.host
            pid = figures.pid
            concurrency = figures.concurrency
            queues = figures.queues
            taskNames = figures.taskNames
            secondsSinceHeartbeat = seconds(figures.sinceHeartbeat)
            live = figures.isLive
            stopping = figures.isStopping
            tasksHeld = figures.tasksHeld
        }
    }

    /// One failed task, as JSON.
    struct Failed: Encodable {
        var id: Int64
        var taskName: String
        var queue: String
        var attempts: Int
        var error: String
        var ageSeconds: Double

        init(_ task: ClusterFailedTask) {
            id = task.id.rawValue
            taskName = task.taskName
            queue = task.queue
            attempts = task.attempts
            error = task.error
            ageSeconds = seconds(task.age)
        }
    }

    /// Prints `value` as one line of JSON with sorted keys.
    static func printJSON(_ value: some Encodable) throws {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        let data = try encoder.encode(value)
        print(String(decoding: data, as: UTF8.self))
    }

    /// The queues as a table.
    static func queuesTable(_ queues: [ClusterQueueFigures]) -> String {
        guard !queues.isEmpty else { return "no tasks on any queue" }
        var rows = [
            ["QUEUE", "QUEUED", "RUNNING", "SUCCEEDED", "FAILED", "CANCELLED", "OLDEST WAITING", "DONE/MIN"]
        ]
        for queue in queues {
            rows.append(
                [queue.name]
                    + [ClusterTaskState.queued, .running, .succeeded, .failed, .cancelled].map {
                        String(queue.counts[$0] ?? 0)
                    }
                    + [queue.oldestWaiting.map(format) ?? "-", String(queue.finishedLastMinute)])
        }
        return table(rows, rightAligned: 1...5)
    }

    /// The workers as a table.
    static func workersTable(_ workers: [ClusterWorkerFigures]) -> String {
        guard !workers.isEmpty else { return "no workers" }
        var rows = [["HOST", "PID", "CONCURRENCY", "HEARTBEAT", "HELD", "STATE", "QUEUES", "ID"]]
        for worker in workers {
            let state = worker.isStopping ? "stopping" : worker.isLive ? "live" : "silent"
            rows.append([
                worker.host, String(worker.pid), String(worker.concurrency),
                format(worker.sinceHeartbeat) + " ago",
                String(worker.tasksHeld), state, worker.queues.joined(separator: ","), worker.id,
            ])
        }
        return table(rows, rightAligned: 1...4)
    }

    /// The failed tasks as a table; errors on one line, cut at 120 characters.
    static func failedTable(_ tasks: [ClusterFailedTask]) -> String {
        guard !tasks.isEmpty else { return "no failed tasks" }
        var rows = [["ID", "QUEUE", "TASK", "ATTEMPTS", "FAILED", "ERROR"]]
        for task in tasks {
            var error = task.error.split(whereSeparator: \.isNewline).joined(separator: " ")
            if error.count > 120 { error = String(error.prefix(117)) + "..." }
            rows.append([
                task.id.description, task.queue, task.taskName, String(task.attempts),
                format(task.age) + " ago",
                error,
            ])
        }
        return table(rows, rightAligned: [0, 3])
    }

    /// Columns padded to their widest cell; the last column is not padded.
    static func table(_ rows: [[String]], rightAligned: some Collection<Int>) -> String {
        let columns = rows.map(\.count).max() ?? 0
        let widths = (0..<columns).map { column in
            rows.map { $0.indices.contains(column) ? $0[column].count : 0 }.max() ?? 0
        }
        return rows.map { row in
            row.enumerated().map { column, cell in
                let padding = String(repeating: " ", count: widths[column] - cell.count)
                if column == row.count - 1 { return rightAligned.contains(column) ? padding + cell : cell }
                return rightAligned.contains(column) ? padding + cell : cell + padding
            }.joined(separator: "  ")
        }.joined(separator: "\n")
    }
}
