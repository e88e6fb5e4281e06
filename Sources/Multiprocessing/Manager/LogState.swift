/// The contents of a shared container as each process holds them: rebuilt from the shared
/// operation log, one entry at a time.
///
/// Every process applies the same entries in the same order, so every replica holds the same
/// contents at the same log position. A writer computes its entries from its replica caught up
/// under the container's lock, so what it writes (an index, a removal) is valid for every
/// replica at that position.
@usableFromInline
protocol LogState: Sendable {
    /// Empty contents (the state before the first entry).
    init()

    /// Applies one entry.
    mutating func apply(_ entry: inout LogEntry) throws(ManagerError)

    /// Writes entries that rebuild the current contents from empty (for compaction).
    func writeSnapshot(to writer: inout LogEntryWriter) throws(ManagerError)
}
