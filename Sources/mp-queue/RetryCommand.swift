import ArgumentParser
import MultiprocessingPostgres

/// `mp-queue retry`: failed or cancelled tasks back on the queue with a fresh count of attempts.
struct RetryCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "retry",
        abstract: "Queue failed or cancelled tasks again, with a fresh count of attempts.",
        discussion: "Tasks that are queued, running or succeeded are left alone (and not counted).")

    @OptionGroup var common: CommonOptions

    @Argument(help: "Task ids.")
    var ids: [Int64] = []

    @Flag(help: "Every failed task (of --queue, or of every queue).")
    var allFailed = false

    @Option(help: "With --all-failed: only this queue's tasks.")
    var queue: String?

    struct Output: Encodable {
        var retried: Int
    }

    func validate() throws {
        guard ids.isEmpty != !allFailed else {
            throw ValidationError("give task ids or --all-failed (not both)")
        }
        guard queue == nil || allFailed else { throw ValidationError("--queue goes with --all-failed") }
    }

    func run() async throws {
        let retried = try await common.withAdmin { admin in
            guard allFailed else { return try await admin.retry(ids.map { ClusterTaskID($0) }) }
            // Page through the failed tasks; each page leaves the failed state once retried.
            var total = 0
            while true {
                let page = try await admin.failedTasks(queue: queue, limit: 1000)
                if page.isEmpty { break }
                let count = try await admin.retry(page.map(\.id))
                total += count
                if count == 0 { break }
            }
            return total
        }
        if common.json {
            try Report.printJSON(Output(retried: retried))
        } else {
            print("retried \(retried) task\(retried == 1 ? "" : "s")")
        }
    }
}
