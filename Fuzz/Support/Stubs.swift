// Only for the fuzz build, which compiles a subset of the library (Wire, System and the pool
// protocol's constants): `PoolWire.swift` names this type, whose real definition
// (Sources/Multiprocessing/Tasks/TaskEnvelope.swift) would pull in most of the library.
struct ErrorReport: Codable, Sendable, Error {
    var message: String
}
