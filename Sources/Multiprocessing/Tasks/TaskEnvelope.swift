#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

/// What the parent sends a new child: which type to decode and run, and its encoded value.
struct LaunchRequest: Codable, Sendable {
    var typeName: String
    var processName: String
    var payload: [UInt8]
    /// The last descriptor of the launch frame is then the write end of a pipe for stdout.
    var capturesStandardOutput: Bool
    /// Logging, setup and trace context for the child (Observability/), when there are any.
    var observation: LaunchObservation? = nil
    /// The sandbox to apply before the task runs (a ``SandboxPlan`` in its own format); the last
    /// descriptor of the launch frame is then the pipe its supervisor reports on (after the
    /// stdout pipe).
    var sandbox: [UInt8]? = nil
}

/// What a child sends back: the encoded output or a report of the error thrown.
enum TaskOutcome: Codable, Sendable {
    case success([UInt8])
    case failure(ErrorReport)
}

/// A thrown error, in a form that survives the trip between processes.
struct ErrorReport: Codable, Sendable, Error {
    /// `String(reflecting:)` of the error's type.
    var typeName: String
    /// The mangled name, when the type is `Codable` and can be found by name.
    var mangledName: String?
    /// The encoded error, when `mangledName` is set.
    var payload: [UInt8]?
    var description: String
    var processName: String
    var pid: Int32

    /// Describes `error`, keeping its value when its type allows.
    init(_ error: any Error) {
        typeName = String(reflecting: type(of: error))
        description = String(describing: error)
        processName = CurrentProcess.name
        pid = getpid()
        if let remote = error as? RemoteError {
            // Re-raised from a grandchild: keep where it really came from.
            typeName = remote.typeName
            description = remote.errorDescription
            processName = remote.processName
            pid = remote.pid
        } else if let codable = error as? any Error & Codable,
            case .success(let name) = TypeIdentity.name(of: type(of: codable)),
            let bytes = try? Self.encode(codable)
        {
            mangledName = name
            payload = bytes
        }
    }

    private static func encode<E: Encodable>(_ value: E) throws(CodecError) -> [UInt8] {
        try BinaryEncoder().encode(value)
    }

    private static func decode<E: Error & Decodable>(_ type: E.Type, _ bytes: [UInt8]) -> (any Error)? {
        try? BinaryDecoder().decode(type, from: bytes)
    }

    /// The error to throw in this process: the original value if it can be re-created, else a
    /// ``RemoteError`` with its description.
    var rethrowable: any Error {
        if let mangledName, let payload,
            let type = TypeIdentity.resolve(mangledName) as? any (Error & Decodable).Type,
            let error = Self.decode(type, payload)
        {
            return error
        }
        return RemoteError(
            typeName: typeName, errorDescription: description, processName: processName, pid: pid)
    }
}

/// Encoding and decoding of task values and outputs, with descriptors travelling beside them.
enum TaskCoding {
    static func encode<T: Encodable>(_ value: T, attachments: DescriptorTransfer.Outgoing? = nil)
        throws(CodecError) -> [UInt8]
    {
        var encoder = BinaryEncoder()
        if let attachments { encoder.userInfo[DescriptorTransfer.key] = attachments }
        return try encoder.encode(value)
    }

    static func decode<T: Decodable>(
        _ type: T.Type, from bytes: [UInt8], descriptors: DescriptorTransfer.Incoming? = nil
    ) throws(CodecError) -> T {
        var decoder = BinaryDecoder()
        if let descriptors { decoder.userInfo[DescriptorTransfer.key] = descriptors }
        return try decoder.decode(type, from: bytes)
    }

    /// Encodes what a task returned: nothing for `Void`, the value for a `Codable` output.
    static func encodeOutput<Output>(_ output: Output) throws(CodecError) -> [UInt8] {
        if Output.self == Void.self { return [] }
        guard let encodable = output as? any Encodable else {
            throw CodecError.encodingFailed("\(Output.self) is not Encodable")
        }
        return try encode(encodable)
    }

    /// `true` when a task's output can come back to the parent.
    static func outputIsTransferable<Output>(_ type: Output.Type) -> Bool {
        type == Void.self || type is any Codable.Type
    }
}
