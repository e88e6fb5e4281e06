// Measures the stack one level of nesting costs BinaryEncoder and BinaryDecoder, for the
// shapes recursion takes in Codable: keyed (struct, class), unkeyed, enums with payloads,
// optionals, nested generic structs and dictionaries. Built by Fuzz/stack-depth.sh against
// the codec compiled as a separate module, unoptimized and optimized, as a user's build would.
@testable import Codec

#if canImport(Glibc)
    import Glibc
#endif

nonisolated(unsafe) var lowest: UInt = .max

/// Notes how deep the stack is here.
@inline(never) func mark() {
    var local = 0
    let address = withUnsafeMutablePointer(to: &local) { UInt(bitPattern: $0) }
    if address < lowest { lowest = address }
}

/// The innermost value: notes the stack depth when it is encoded or decoded.
struct Probe: Codable {
    init() {}
    init(from decoder: any Decoder) throws {
        mark()
        _ = try decoder.singleValueContainer().decode(Int.self)
    }
    func encode(to encoder: any Encoder) throws {
        mark()
        var container = encoder.singleValueContainer()
        try container.encode(1)
    }
}

final class Linked: Codable {
    var next: Linked?
    var probe: Probe?
    init(_ n: Int) {
        next = n > 0 ? Linked(n - 1) : nil
        probe = n == 0 ? Probe() : nil
    }
}

struct Branches: Codable {
    var next: [Branches]
    var probe: Probe?
    init(_ n: Int) {
        next = n > 0 ? [Branches(n - 1)] : []
        probe = n == 0 ? Probe() : nil
    }
}

struct Positional: Codable {
    var children: [Positional]
    var probe: Probe?
    init(_ n: Int) {
        children = n > 0 ? [Positional(n - 1)] : []
        probe = n == 0 ? Probe() : nil
    }
    func encode(to encoder: any Encoder) throws {
        var container = encoder.unkeyedContainer()
        try container.encode(children.count)
        for child in children { try container.encode(child) }
        if let probe { try container.encode(probe) }
    }
    init(from decoder: any Decoder) throws {
        var container = try decoder.unkeyedContainer()
        let count = try container.decode(Int.self)
        children = []
        for _ in 0..<count { children.append(try container.decode(Positional.self)) }
        probe = container.isAtEnd ? nil : try container.decode(Probe.self)
    }
}

indirect enum Chain: Codable {
    case leaf(Probe)
    case node(Chain)
    static func make(_ n: Int) -> Chain { n == 0 ? .leaf(Probe()) : .node(make(n - 1)) }
}

indirect enum MaybeChain: Codable {
    case leaf(Probe)
    case wrap(MaybeChain?)
    static func make(_ n: Int) -> MaybeChain { n == 0 ? .leaf(Probe()) : .wrap(make(n - 1)) }
}

struct Wrapped<T: Codable>: Codable { var value: T }

indirect enum Generic: Codable {
    case leaf(Probe)
    case wrap(Wrapped<Wrapped<Generic>>)
    static func make(_ n: Int) -> Generic {
        n == 0 ? .leaf(Probe()) : .wrap(Wrapped(value: Wrapped(value: make(n - 1))))
    }
}

struct Directory: Codable {
    var entries: [String: Directory]
    var probe: Probe?
    init(_ n: Int) {
        entries = n > 0 ? ["d": Directory(n - 1)] : [:]
        probe = n == 0 ? Probe() : nil
    }
}

/// Stack used per level, from the difference between values 50 and 150 levels deep, and how
/// many of the codec's levels (what `maximumDepth` counts) one level of the shape is.
func measure<T: Codable>(_ name: String, _ make: (Int) -> T) {
    var encoder = BinaryEncoder()
    encoder.maximumDepth = 100_000
    var decoder = BinaryDecoder()
    decoder.maximumDepth = 100_000
    func run(_ n: Int) -> (encode: UInt, decode: UInt, levels: Int) {
        let value = make(n)
        var local = 0
        let base = withUnsafeMutablePointer(to: &local) { UInt(bitPattern: $0) }
        lowest = .max
        let bytes = try! encoder.encode(value)
        let encodeUsed = base - lowest
        lowest = .max
        _ = try! decoder.decode(T.self, from: bytes)
        let decodeUsed = base - lowest
        // The smallest limit that decodes it is its depth in levels.
        var low = 1
        var high = 100_000
        while low < high {
            let middle = (low + high) / 2
            var limited = BinaryDecoder()
            limited.maximumDepth = middle
            if (try? limited.decode(T.self, from: bytes)) != nil { high = middle } else { low = middle + 1 }
        }
        return (encodeUsed, decodeUsed, low)
    }
    let a = run(50)
    let b = run(150)
    let levels = Double(b.levels - a.levels) / 100
    let encode = Double(b.encode - a.encode) / 100
    let decode = Double(b.decode - a.decode) / 100
    func pad(_ text: String, _ width: Int) -> String {
        text + String(repeating: " ", count: max(0, width - text.count))
    }
    print(
        pad(name, 32), pad("\(levels)", 8), pad("\(Int(encode)) / \(Int(encode / levels))", 16),
        "\(Int(decode)) / \(Int(decode / levels))")
}

@main struct Main {
    static func main() {
        print("shape                            levels  encode: B per shape / per level, decode: the same")
        measure("keyed class, optional link") { Linked($0) }
        measure("keyed struct, array link") { Branches($0) }
        measure("unkeyed container") { Positional($0) }
        measure("enum with a payload") { Chain.make($0) }
        measure("enum with an optional payload") { MaybeChain.make($0) }
        measure("nested generic structs") { Generic.make($0) }
        measure("dictionary") { Directory($0) }
    }
}
