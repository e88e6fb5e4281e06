import ArgumentParser
import MultiprocessingPostgres

/// `mp-queue cancel`: queued tasks never run; running ones are stopped by their workers.
struct CancelCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "cancel",
        abstract: "Cancel queued or running tasks (a worker running one stops it).",
        discussion: "Finished tasks keep their outcome (and are not counted).")

    @OptionGroup var common: CommonOptions

    @Argument(help: "Task ids.")
    var ids: [Int64]

    struct Output: Encodable {
        var cancelled: Int
    }

    func validate() throws {
        guard !ids.isEmpty else { throw ValidationError("give at least one task id") }
    }

    func run() async throws {
        let cancelled = try await common.withAdmin { admin in
            try await admin.cancel(ids.map { ClusterTaskID($0) })
        }
        if common.json {
            try Report.printJSON(Output(cancelled: cancelled))
        } else {
            print("cancelled \(cancelled) task\(cancelled == 1 ? "" : "s")")
        }
    }
}
