import ArgumentParser

/// mp-queue: the operations tool of a MultiprocessingPostgres queue, on ``ClusterAdmin``.
@main
struct MPQueue: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "mp-queue",
        abstract: "Shows and operates a MultiprocessingPostgres queue.",
        discussion: """
            Every command takes --url (default: $MP_POSTGRES_URL), --schema (default: \
            multiprocessing) and --json (one JSON object on stdout, for programs). Connecting \
            creates or upgrades the queue's schema, as every party of the queue does.
            """,
        subcommands: [
            StatusCommand.self, QueuesCommand.self, WorkersCommand.self, FailedCommand.self,
            RetryCommand.self, CancelCommand.self, PurgeCommand.self, CleanupCommand.self,
            RescueCommand.self,
        ],
        defaultSubcommand: StatusCommand.self
    )
}
