import ArgumentParser
import MultiprocessingPostgres

/// `mp-queue cleanup`: retention, the deletion of tasks that finished long ago.
struct CleanupCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "cleanup",
        abstract: "Retention: delete tasks that finished more than --older-than ago.",
        discussion: "Run it from cron or a timer, e.g. mp-queue cleanup --older-than 7d.")

    @OptionGroup var common: CommonOptions

    @Option(help: "The age past which finished tasks go, e.g. 12h, 7d.")
    var olderThan: TimeSpan

    @Option(help: "Only this queue's tasks.")
    var queue: String?

    struct Output: Encodable {
        var deleted: Int
    }

    func run() async throws {
        let deleted = try await common.withAdmin { admin in
            try await admin.deleteFinished(olderThan: olderThan.duration, queue: queue)
        }
        if common.json {
            try Report.printJSON(Output(deleted: deleted))
        } else {
            print(
                "deleted \(deleted) finished task\(deleted == 1 ? "" : "s") older than \(format(olderThan.duration))"
            )
        }
    }
}
