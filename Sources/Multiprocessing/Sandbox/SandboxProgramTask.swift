#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

/// The task of a child that runs an external program in a sandbox: it only carries the
/// program's standard input, output and error (the first three descriptors of the launch
/// frame, where ``SandboxProgramLauncher`` looks for them). It never runs as a Swift task: the
/// sandbox's task process executes the program instead.
struct SandboxProgramTask: ProcessTask {
    /// A descriptor that travels with the task (SCM_RIGHTS); this process's copy stays open.
    struct Descriptor: Codable, Sendable {
        let fd: Int32

        init(_ fd: Int32) { self.fd = fd }

        func encode(to encoder: any Encoder) throws {
            guard let attachments = encoder.userInfo[DescriptorTransfer.key] as? DescriptorTransfer.Outgoing
            else {
                throw DescriptorTransfer.notTransferable("a program's descriptor", encoder.codingPath)
            }
            var container = encoder.singleValueContainer()
            try container.encode(attachments.attach(fd))
        }

        init(from decoder: any Decoder) throws {
            let index = try decoder.singleValueContainer().decode(Int.self)
            guard let incoming = decoder.userInfo[DescriptorTransfer.key] as? DescriptorTransfer.Incoming,
                let fd = incoming.take(index)
            else { throw DescriptorTransfer.missing("a program's descriptor", decoder.codingPath) }
            self.fd = fd
        }
    }

    let standardInput: Descriptor
    let standardOutput: Descriptor
    let standardError: Descriptor

    func run() async throws {
        // Reached only if a child runtime without the sandbox's launcher got this task.
        throw SandboxError.setupFailed("a program task ran as a Swift task")
    }
}
