import CMultiprocessing

#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

/// A sandbox's seccomp filter as a classic BPF program, assembled here from the
/// ``SystemCallFilter`` (no system library: the kernel takes the instructions as they are).
///
/// ```
///  load arch;   not this architecture's ABI      -> kill
///  load nr;     x32 ABI (x86_64)                 -> kill
///  nr == each denied call                        -> notify (the init names it and ends the sandbox)
///  nr == socket, socketpair (no new sockets)     -> EACCES
///  nr == clone3                                  -> ENOSYS (flags out of reach; libc falls back to clone)
///  nr == clone: flags & CLONE_NEW*               -> notify
///                                                -> allow
/// ```
struct SeccompProgram {
    private enum Target: Hashable { case allow, notify, kill, noSystemCall, refused }
    private enum Step {
        case load(UInt32)
        case jumpIfEqual(UInt32, Target?)
        case jumpIfAbove(UInt32, Target)
        case jumpIfAnyBit(UInt32, Target, otherwise: Target)
        case skipUnlessEqual(UInt32, count: UInt8)
        case skipIfEqual(UInt32, count: UInt8)
        case ret(Target)
    }

    /// The instructions, for `mp_sb_seccomp_install`.
    let instructions: [mp_bpf_insn]

    /// The instructions as they travel in a ``SandboxPlan``: code, jt, jf and k in one word each.
    var packed: [UInt64] {
        instructions.map { UInt64($0.code) << 48 | UInt64($0.jt) << 40 | UInt64($0.jf) << 32 | UInt64($0.k) }
    }

    /// The program a ``packed`` array holds.
    init(packed: [UInt64]) {
        instructions = packed.map {
            mp_bpf_insn(
                code: UInt16(truncatingIfNeeded: $0 >> 48), jt: UInt8(truncatingIfNeeded: $0 >> 40),
                jf: UInt8(truncatingIfNeeded: $0 >> 32), k: UInt32(truncatingIfNeeded: $0))
        }
    }

    /// Every `CLONE_NEW*` flag that fits `clone`'s 32-bit flags (NEWNS, NEWCGROUP, NEWUTS,
    /// NEWIPC, NEWUSER, NEWPID, NEWNET).
    static let namespaceFlags: UInt32 =
        0x0002_0000 | 0x0200_0000 | 0x0400_0000 | 0x0800_0000 | 0x1000_0000
        | 0x2000_0000 | 0x4000_0000

    /// Builds the filter; `notifies` says whether denials go to a listener (`false`: they kill
    /// the process, where the kernel has no listeners).
    init(filter: SystemCallFilter, notifies: Bool) throws(SandboxError) {
        let arch = mp_sb_audit_arch()
        guard arch != 0, !SystemCallTable.current.isEmpty else {
            throw .unavailable(.systemCallFilter, reason: "no filter for this architecture")
        }
        var denied = SystemCallTable.deniedByDefault + filter.additionalDenials
        if !filter.allowsExec { denied += ["execve", "execveat"] }
        var numbers: [UInt32] = []
        for name in denied {
            guard let number = SystemCallTable.number(of: name) else {
                // A default denial this architecture lacks (iopl on arm64) denies nothing.
                if SystemCallTable.deniedByDefault.contains(name) { continue }
                throw .invalidConfiguration("no system call named '\(name)' on this architecture")
            }
            if !numbers.contains(number) { numbers.append(number) }
        }
        var steps: [Step] = [.load(4), .skipIfEqual(arch, count: 1), .ret(.kill), .load(0)]
        #if arch(x86_64)
            steps.append(.jumpIfAbove(0x4000_0000 - 1, .kill))
        #endif
        for number in numbers { steps.append(.jumpIfEqual(number, .notify)) }
        if !filter.allowsNewSockets {
            // Refused, not fatal: libraries probe with sockets and cope (Dispatch logs a failed
            // priority change through syslog's socket), and none can be made either way.
            for name in ["socket", "socketpair"] {
                if let number = SystemCallTable.number(of: name) {
                    steps.append(.jumpIfEqual(number, .refused))
                }
            }
        }
        if let clone3 = SystemCallTable.number(of: "clone3") {
            steps.append(.jumpIfEqual(clone3, .noSystemCall))
        }
        if let clone = SystemCallTable.number(of: "clone") {
            // Not clone: skip the two steps that look at its flags.
            steps.append(.skipUnlessEqual(clone, count: 2))
            steps.append(.load(16))  // args[0], low 32 bits (little-endian).
            steps.append(.jumpIfAnyBit(Self.namespaceFlags, .notify, otherwise: .allow))
        }
        steps.append(.ret(.allow))
        instructions = try Self.assemble(steps, notifies: notifies)
    }

    private static func assemble(_ steps: [Step], notifies: Bool) throws(SandboxError) -> [mp_bpf_insn] {
        let ends: [Target] = [.allow, .notify, .noSystemCall, .refused, .kill]
        let endIndex = Dictionary(uniqueKeysWithValues: ends.enumerated().map { ($1, steps.count + $0) })
        func offset(_ target: Target, from index: Int) throws(SandboxError) -> UInt8 {
            let distance = endIndex[target]! - index - 1
            guard distance <= 255 else { throw .invalidConfiguration("the system-call filter is too long") }
            return UInt8(distance)
        }
        let ldAbsolute: UInt16 = 0x20
        let jumpEqual: UInt16 = 0x15
        let jumpAbove: UInt16 = 0x25
        let jumpBits: UInt16 = 0x45
        let ret: UInt16 = 0x06
        var program: [mp_bpf_insn] = []
        for (index, step) in steps.enumerated() {
            switch step {
            case .load(let offset):
                program.append(mp_bpf_insn(code: ldAbsolute, jt: 0, jf: 0, k: offset))
            case .jumpIfEqual(let value, let target):
                let jt =
                    try target.map { (t: Target) throws(SandboxError) in try offset(t, from: index) } ?? 0
                program.append(mp_bpf_insn(code: jumpEqual, jt: jt, jf: 0, k: value))
            case .jumpIfAbove(let value, let target):
                program.append(
                    mp_bpf_insn(code: jumpAbove, jt: try offset(target, from: index), jf: 0, k: value))
            case .jumpIfAnyBit(let bits, let target, let otherwise):
                program.append(
                    mp_bpf_insn(
                        code: jumpBits, jt: try offset(target, from: index),
                        jf: try offset(otherwise, from: index),
                        k: bits))
            case .skipUnlessEqual(let value, let count):
                program.append(mp_bpf_insn(code: jumpEqual, jt: 0, jf: count, k: value))
            case .skipIfEqual(let value, let count):
                program.append(mp_bpf_insn(code: jumpEqual, jt: count, jf: 0, k: value))
            case .ret(let target):
                program.append(
                    mp_bpf_insn(code: ret, jt: 0, jf: 0, k: Self.action(target, notifies: notifies)))
            }
        }
        for target in ends {
            program.append(mp_bpf_insn(code: ret, jt: 0, jf: 0, k: Self.action(target, notifies: notifies)))
        }
        return program
    }

    private static func action(_ target: Target, notifies: Bool) -> UInt32 {
        switch target {
        case .allow: 0x7fff_0000  // SECCOMP_RET_ALLOW
        case .notify: notifies ? 0x7fc0_0000 : 0x8000_0000  // USER_NOTIF, or KILL_PROCESS
        case .kill: 0x8000_0000  // SECCOMP_RET_KILL_PROCESS
        case .noSystemCall: 0x0005_0000 | UInt32(ENOSYS)  // SECCOMP_RET_ERRNO | ENOSYS
        case .refused: 0x0005_0000 | UInt32(EACCES)
        }
    }
}
