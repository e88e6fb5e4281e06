import ArgumentParser
import MultiprocessingPostgres

/// `mp-queue purge`: deletes a queue's tasks in some states.
struct PurgeCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "purge",
        abstract: "Delete a queue's tasks in the given states (by default the finished ones).",
        discussion: """
            States: queued, running, succeeded, failed, cancelled. A producer waiting for a purged \
            task's result never gets it; purge queued or running tasks only when nobody waits.
            """)

    @OptionGroup var common: CommonOptions

    @Option(help: "The queue.")
    var queue: String

    @Option(
        name: .customLong("state"),
        help: "A state to purge (repeat for several). Default: succeeded, failed, cancelled.")
    var states: [String] = []

    struct Output: Encodable {
        var purged: Int
    }

    func validate() throws {
        for state in states where ClusterTaskState(rawValue: state) == nil {
            throw ValidationError(
                "unknown state '\(state)' (one of: \(ClusterTaskState.allCases.map(\.rawValue).joined(separator: ", ")))"
            )
        }
    }

    func run() async throws {
        let chosen =
            states.isEmpty
            ? ClusterTaskState.finished : Set(states.compactMap { ClusterTaskState(rawValue: $0) })
        let purged = try await common.withAdmin { admin in try await admin.purge(queue: queue, states: chosen)
        }
        if common.json {
            try Report.printJSON(Output(purged: purged))
        } else {
            let names = ClusterTaskState.allCases.filter(chosen.contains).map(\.rawValue).joined(
                separator: ", ")
            print("purged \(purged) task\(purged == 1 ? "" : "s") (\(names)) from queue '\(queue)'")
        }
    }
}
