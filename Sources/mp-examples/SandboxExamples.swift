import Multiprocessing

#if canImport(Glibc)
    import Glibc
#endif

// Sandboxing: untrusted input parsed in a confined pool, and a user's script run with no
// network and a read-only file system.

/// A deliberately careless parser of `key=value;...` records: it follows `include=` to a file,
/// fetches `callback=` over TCP, runs `filter=` as a command and allocates `repeat=` copies —
/// the kind of power a bug hands an attacker. In the sandbox none of it reaches anything.
struct ParseUntrustedRecord: ProcessFunction {
    struct Rejected: Error, CustomStringConvertible {
        var description: String
    }

    func callAsFunction(_ record: String) async throws -> String {
        var fields: [String: String] = [:]
        for pair in record.split(separator: ";") {
            let parts = pair.split(separator: "=", maxSplits: 1).map(String.init)
            guard parts.count == 2 else { throw Rejected(description: "malformed field '\(pair)'") }
            fields[parts[0]] = parts[1]
        }
        if let path = fields["include"] {
            let fd = open(path, O_RDONLY)
            guard fd >= 0 else {
                throw Rejected(description: "include \(path): \(String(cString: strerror(errno)))")
            }
            close(fd)
            return "included \(path)"
        }
        if fields["callback"] != nil {
            let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
            guard fd >= 0 else {
                throw Rejected(description: "callback: \(String(cString: strerror(errno)))")
            }
            close(fd)
            return "opened a socket"
        }
        if let command = fields["filter"] {
            let argv: [UnsafeMutablePointer<CChar>?] = [strdup(command), nil]
            execv(command, argv)  // Under the filter the sandbox stops the worker here.
            throw Rejected(description: "filter \(command): \(String(cString: strerror(errno)))")
        }
        if let count = fields["repeat"].flatMap(Int.init), count > 0 {
            let copies = [UInt8](repeating: 1, count: count)  // Touched: really allocated.
            return "repeated \(copies.count) bytes"
        }
        return fields.keys.sorted().map { "\($0): \(fields[$0]!)" }.joined(separator: ", ")
    }
}

let sandboxExamples: [Example] = [
    (
        "sandbox-parse", "hostile input parsed in a sandboxed pool: each attack fails, the pool goes on",
        {
            var options = PoolOptions()
            options.sandbox = .strict  // No network, nothing readable outside, small limits, strict filter.
            let records = [
                "name=alice;age=31",
                "include=/etc/shadow",
                "callback=127.0.0.1:80",
                "filter=/bin/sh",
                "repeat=4000000000",
                "name=bob;age=27",
            ]
            try await withProcessPool(workers: 2, options: options) { pool in
                let results = try await pool.mapResults(ParseUntrustedRecord(), over: records, chunkSize: 1)
                for (record, result) in zip(records, results) {
                    switch result {
                    case .success(let parsed):
                        say("  \(record) → \(parsed)")
                    case .failure(PoolError.workerLost(let loss)):
                        let why = loss.sandboxVerdict.map { "the sandbox stopped it: \($0)" } ?? "\(loss)"
                        say("  \(record) → worker lost; \(why)")
                    case .failure(let error):
                        say("  \(record) → refused: \(error)")
                    }
                }
            }
        }
    ),
    (
        "sandbox-script", "a user's script with no network, a read-only file system and a time limit",
        {
            // What a user might upload: it looks around and tries to leave a mark.
            let script = """
                echo "user $(id -u), host $(hostname)"
                echo "interfaces: $(tail -n +3 /proc/net/dev | cut -d: -f1 | tr -d ' ' | tr '\\n' ' ')"
                echo pwned > /usr/local/pwned 2>/dev/null || echo "cannot write /usr/local"
                ls /home /root 2>/dev/null || echo "cannot see /home or /root"
                echo "scratch" > /tmp/work && echo "private /tmp: $(cat /tmp/work)"
                echo "a complaint" >&2
                exit 4
                """
            let result = try await Sandbox.program.run(
                "/bin/sh", arguments: ["-c", script], timeLimit: .seconds(10))
            for line in result.output.split(separator: "\n") { say("  \(line)") }
            say("  stderr: \(result.errorOutput.trimmingNewline), status: \(result.status)")
            say("  applied: \(result.report.applied.map(\.rawValue).joined(separator: ", "))")
            // A script that never ends is stopped at its time limit, with a verdict.
            let endless = try await Sandbox.program.run(
                "/bin/sh", arguments: ["-c", "while :; do :; done"], timeLimit: .milliseconds(500))
            say(
                "  an endless script: \(endless.verdict.map { "\($0)" } ?? "no verdict"), status \(endless.status)"
            )
        }
    ),
]

extension String {
    /// Without trailing newlines.
    fileprivate var trimmingNewline: String {
        var text = self
        while text.hasSuffix("\n") { text.removeLast() }
        return text
    }
}
