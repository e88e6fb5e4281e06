import Synchronization

/// Names a type so that another copy of the same binary can find it again, and finds it.
///
/// The parent sends `_mangledTypeName(T.self)`; the child resolves it with `_typeByName` and
/// casts it to the protocol it needs. Only types compiled into the binary and conforming to
/// that protocol can ever be chosen by a peer: nothing is injected, unlike pickle.
enum TypeIdentity {
    /// Names already checked. The check resolves the name back through the runtime, which
    /// decodes it and searches the binary's type records: about 0.3 ms of every start, for a
    /// name that never changes. Only ever tried, never waited for: a child made by `fork` while
    /// another thread held the lock checks afresh instead of hanging.
    private static let checked = Mutex<[ObjectIdentifier: String]>([:])

    /// The name that resolves back to `type`, or an explanation of why there is none.
    static func name(of type: Any.Type) -> Result<String, ProcessError> {
        let key = ObjectIdentifier(type)
        if let known = checked.withLockIfAvailable({ $0[key] }), let known { return .success(known) }
        let result = check(type)
        if case .success(let name) = result { _ = checked.withLockIfAvailable { $0[key] = name } }
        return result
    }

    private static func check(_ type: Any.Type) -> Result<String, ProcessError> {
        guard let name = _mangledTypeName(type) else {
            return .failure(
                .unsupportedTaskType(typeName: String(reflecting: type), reason: "it has no mangled name"))
        }
        guard let resolved = _typeByName(name), resolved == type else {
            return .failure(
                .unsupportedTaskType(
                    typeName: String(reflecting: type),
                    reason:
                        "a child process cannot find it by name; private, fileprivate and local types (declared inside a function) are invisible to the runtime. Declare it internal or public, at file scope or nested in another type"
                ))
        }
        return .success(name)
    }

    /// The type behind `name`, or `nil` when this binary has no such type.
    static func resolve(_ name: String) -> Any.Type? {
        _typeByName(name)
    }
}
