import Logging
import PostgresNIO
import Synchronization

/// The `LISTEN` loop that producers and workers share: listens on the cluster's channel until
/// cancelled, reconnecting with a growing pause.
///
/// Each session runs in a task of its own that is left behind, not awaited, once the caller is
/// cancelled or the session's connection closes. postgres-nio 1.33 can leave `listen` suspended
/// for ever on a connection that closed under it (vapor/postgres-nio#600); awaiting it would
/// stop this loop from reconnecting after a server restart, and a pool or worker from ever
/// shutting down. A session left behind holds nothing but its suspended task.
enum ClusterListener {
    /// - Parameters:
    ///   - listening: called each time a session starts listening (notifications sent before
    ///     were missed).
    ///   - lost: called after a session ended and the pause before the next one.
    ///   - handle: called with each notification's payload.
    static func run(
        _ db: ClusterDatabase, listening: @escaping @Sendable () -> Void,
        lost: @escaping @Sendable () -> Void, handle: @escaping @Sendable (String) -> Void
    ) async {
        var pause = db.configuration.reconnectDelay
        while !Task.isCancelled {
            let ended = Gate<Void>()
            let listened = Atomic<Bool>(false)
            let session = Task {
                do {
                    try await db.client.withConnection { connection in
                        connection.closeFuture.whenComplete { _ in ended.open(.success(())) }
                        try await connection.listen(on: db.configuration.channel) { notifications in
                            listened.store(true, ordering: .relaxed)
                            listening()
                            for try await notification in notifications { handle(notification.payload) }
                        }
                    }
                } catch {
                    db.logger.debug(
                        "listening failed", metadata: ["error": "\(ClusterDatabase.describe(error))"])
                }
                ended.open(.success(()))
            }
            do {
                try await ended.value()
            } catch {
                session.cancel()  // Cancelled: not awaited (see above).
                return
            }
            session.cancel()
            if listened.load(ordering: .relaxed) { pause = db.configuration.reconnectDelay }
            guard (try? await Task.sleep(for: pause)) != nil else { return }
            pause = min(pause * 2, db.configuration.maximumReconnectDelay)
            lost()
        }
    }
}
