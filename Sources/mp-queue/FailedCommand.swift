import ArgumentParser
import MultiprocessingPostgres

/// `mp-queue failed`: failed tasks with their last error, newest first.
struct FailedCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "failed", abstract: "Show failed tasks with their last error, newest first.")

    @OptionGroup var common: CommonOptions

    @Option(help: "Only this queue's tasks.")
    var queue: String?

    @Option(help: "At most this many tasks.")
    var limit = 100

    struct Output: Encodable {
        var failed: [Report.Failed]
    }

    func validate() throws {
        guard limit > 0 else { throw ValidationError("--limit must be at least 1") }
    }

    func run() async throws {
        let tasks = try await common.withAdmin { admin in
            try await admin.failedTasks(queue: queue, limit: limit)
        }
        if common.json {
            try Report.printJSON(Output(failed: tasks.map(Report.Failed.init)))
        } else {
            print(Report.failedTable(tasks))
        }
    }
}
