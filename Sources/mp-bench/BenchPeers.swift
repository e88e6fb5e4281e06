import Synchronization

/// Figures of peers that are not CPython (bubblewrap, PgQueuer), by entry name: an entry's
/// measuring function records its peer's figure here, and it goes in the `python` field with
/// `"peer": <name>`. CPython is not run for such an entry.
let peerFigures = Mutex<[String: (value: Double, peer: String)]>([:])
