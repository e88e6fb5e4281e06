import Testing

@testable import Multiprocessing

// MARK: - Fixtures

private struct AllIntegers: Codable, Equatable {
    var int: Int
    var int8: Int8
    var int16: Int16
    var int32: Int32
    var int64: Int64
    var int128: Int128
    var uint: UInt
    var uint8: UInt8
    var uint16: UInt16
    var uint32: UInt32
    var uint64: UInt64
    var uint128: UInt128

    static let minimums = AllIntegers(
        int: .min, int8: .min, int16: .min, int32: .min, int64: .min, int128: .min,
        uint: .min, uint8: .min, uint16: .min, uint32: .min, uint64: .min, uint128: .min)
    static let maximums = AllIntegers(
        int: .max, int8: .max, int16: .max, int32: .max, int64: .max, int128: .max,
        uint: .max, uint8: .max, uint16: .max, uint32: .max, uint64: .max, uint128: .max)
    static let mixed = AllIntegers(
        int: -1, int8: -2, int16: 300, int32: -70_000, int64: 1 << 40, int128: -(1 << 100),
        uint: 1, uint8: 200, uint16: 65_000, uint32: 1 << 31, uint64: 1 << 63, uint128: 1 << 127)
}

/// Generic so that every integer goes through the generic `encode<T>` / `decode<T>` paths.
private struct Box<T: Codable & Equatable>: Codable, Equatable {
    var value: T
}

private enum Shape: Codable, Equatable {
    case circle(radius: Double)
    case rectangle(width: Double, height: Double)
    case labeled(String, Int)
    case empty
}

private indirect enum Tree: Codable, Equatable {
    case leaf(Int)
    case node(Tree, Tree)

    static func make(depth: Int, seed: Int = 0) -> Tree {
        depth == 0
            ? .leaf(seed)
            : .node(make(depth: depth - 1, seed: seed * 2), make(depth: depth - 1, seed: seed * 2 + 1))
    }
}

private struct Node: Codable, Equatable {
    var name: String
    var children: [Node]
}

private enum Color: String, Codable, CodingKeyRepresentable {
    case red, green, blue
}

private enum Level: Int, Codable, CodingKeyRepresentable {
    case low = 1
    case high = 10
}

private struct Point: Codable, Hashable {
    var x: Int
    var y: Int
}

private struct Empty: Codable, Equatable {}

/// Writes and reads nothing at all.
private struct Silent: Codable, Equatable {
    init() {}
    init(from decoder: any Decoder) throws {}
    func encode(to encoder: any Encoder) throws {}
}

/// Bytes written as an unkeyed bulk copy and read back as a `[UInt8]` value: the two layouts
/// are the same for 1-byte elements.
private struct ByteView: Codable, Equatable {
    var bytes: ArraySlice<UInt8>

    init(bytes: ArraySlice<UInt8>) { self.bytes = bytes }

    init(from decoder: any Decoder) throws {
        bytes = ArraySlice(try decoder.singleValueContainer().decode([UInt8].self))
    }

    func encode(to encoder: any Encoder) throws {
        var container = encoder.unkeyedContainer()
        try container.encode(contentsOf: bytes)
    }
}

private struct Samples: Codable, Equatable {
    var samples: [Double]
}

private struct Document: Codable, Equatable {
    var title: String
    var id: Int64
    var ratio: Double
    var flags: [Bool]
    var tags: Set<String>
    var scores: [String: Int]
    var byLevel: [Int: String]
    var points: [Point]
    var shape: Shape
    var tree: Tree
    var note: String?
    var missing: Int?
    var raw: [UInt8]
    var matrix: [[Float]]
    var nested: Box<Box<[Int?]>>

    static var sample: Document {
        Document(
            title: "Grüße, 世界 🌍", id: -42, ratio: 0.1, flags: [true, false, true],
            tags: ["a", "b", "c"], scores: ["x": 1, "y": -2, "042": 3],
            byLevel: [-1: "neg", 0: "zero", 7: "seven"],
            points: [Point(x: 1, y: 2), Point(x: -3, y: 4)], shape: .rectangle(width: 2, height: 3.5),
            tree: .make(depth: 3), note: "hi", missing: nil, raw: [0, 1, 2, 255],
            matrix: [[1, 2], [], [3.5]], nested: Box(value: Box(value: [1, nil, 3])))
    }
}

/// Superclass part of a class hierarchy encoded through `superEncoder()`.
private class Animal: Codable {
    var name: String
    init(name: String) { self.name = name }
}

private final class Dog: Animal {
    var breed: String

    init(name: String, breed: String) {
        self.breed = breed
        super.init(name: name)
    }

    private enum CodingKeys: String, CodingKey { case breed }

    required init(from decoder: any Decoder) throws {
        let container = try decoder.container(keyedBy: CodingKeys.self)
        breed = try container.decode(String.self, forKey: .breed)
        try super.init(from: container.superDecoder())
    }

    override func encode(to encoder: any Encoder) throws {
        var container = encoder.container(keyedBy: CodingKeys.self)
        try container.encode(breed, forKey: .breed)
        try super.encode(to: container.superEncoder())
    }
}

/// Subclass that shares its encoder with the superclass (one keyed container, two key types).
private final class Cat: Animal {
    var lives: Int

    init(name: String, lives: Int) {
        self.lives = lives
        super.init(name: name)
    }

    private enum CodingKeys: String, CodingKey { case lives }

    required init(from decoder: any Decoder) throws {
        lives = try decoder.container(keyedBy: CodingKeys.self).decode(Int.self, forKey: .lives)
        try super.init(from: decoder)
    }

    override func encode(to encoder: any Encoder) throws {
        var container = encoder.container(keyedBy: CodingKeys.self)
        try container.encode(lives, forKey: .lives)
        try super.encode(to: encoder)
    }
}

/// A single-value wrapper with a hand-written Codable.
private struct Celsius: Codable, Equatable {
    var degrees: Double

    init(degrees: Double) { self.degrees = degrees }

    init(from decoder: any Decoder) throws {
        degrees = try decoder.singleValueContainer().decode(Double.self)
    }

    func encode(to encoder: any Encoder) throws {
        var container = encoder.singleValueContainer()
        try container.encode(degrees)
    }
}

/// Writes keys a, b, c, extra and reads them back in another order, with `contains`,
/// `decodeIfPresent` and `allKeys`.
private struct Reordered: Codable, Equatable {
    static func == (lhs: Self, rhs: Self) -> Bool {
        lhs.a == rhs.a && lhs.b == rhs.b && lhs.c == rhs.c && lhs.extra == rhs.extra
    }

    var a: Int
    var b: String
    var c: [Double]
    var extra: Int?
    var keyCount = 0

    private enum CodingKeys: String, CodingKey { case a, b, c, extra, absent }

    init(a: Int, b: String, c: [Double], extra: Int?) {
        self.a = a
        self.b = b
        self.c = c
        self.extra = extra
    }

    func encode(to encoder: any Encoder) throws {
        var container = encoder.container(keyedBy: CodingKeys.self)
        try container.encode(a, forKey: .a)
        try container.encode(b, forKey: .b)
        try container.encode(c, forKey: .c)
        try container.encodeIfPresent(extra, forKey: .extra)
    }

    init(from decoder: any Decoder) throws {
        let container = try decoder.container(keyedBy: CodingKeys.self)
        c = try container.decode([Double].self, forKey: .c)
        guard !container.contains(.absent) else { throw CodecError.invalidValue("absent key present") }
        extra = try container.decodeIfPresent(Int.self, forKey: .extra)
        a = try container.decode(Int.self, forKey: .a)
        b = try container.decode(String.self, forKey: .b)
        keyCount = container.allKeys.count
    }
}

/// Twelve fields read in reverse order: exercises the indexed lookup of large containers.
private struct Wide: Codable, Equatable {
    var f0 = 0, f1 = 1, f2 = 2, f3 = 3, f4 = 4, f5 = 5, f6 = 6, f7 = 7, f8 = 8, f9 = 9, f10 = 10, f11 = 11

    private enum CodingKeys: CodingKey { case f0, f1, f2, f3, f4, f5, f6, f7, f8, f9, f10, f11 }

    init() {}

    init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        f11 = try c.decode(Int.self, forKey: .f11)
        f10 = try c.decode(Int.self, forKey: .f10)
        f9 = try c.decode(Int.self, forKey: .f9)
        f8 = try c.decode(Int.self, forKey: .f8)
        f7 = try c.decode(Int.self, forKey: .f7)
        f6 = try c.decode(Int.self, forKey: .f6)
        f5 = try c.decode(Int.self, forKey: .f5)
        f4 = try c.decode(Int.self, forKey: .f4)
        f3 = try c.decode(Int.self, forKey: .f3)
        f2 = try c.decode(Int.self, forKey: .f2)
        f1 = try c.decode(Int.self, forKey: .f1)
        f0 = try c.decode(Int.self, forKey: .f0)
    }
}

/// Hand-written nesting: keyed-in-keyed, unkeyed-in-keyed, keyed-in-unkeyed, unkeyed-in-unkeyed,
/// a super encoder inside an unkeyed container, and explicit nils.
private struct Layout: Codable, Equatable {
    var origin: Point
    var rows: [[Int]]
    var labels: [String]
    var maybe: Int?

    private enum Keys: String, CodingKey { case origin, grid, labels }
    private enum PointKeys: Int, CodingKey {
        case x = 1
        case y = 2
    }

    init(origin: Point, rows: [[Int]], labels: [String], maybe: Int?) {
        self.origin = origin
        self.rows = rows
        self.labels = labels
        self.maybe = maybe
    }

    func encode(to encoder: any Encoder) throws {
        var container = encoder.container(keyedBy: Keys.self)
        var origin = container.nestedContainer(keyedBy: PointKeys.self, forKey: .origin)
        try origin.encode(self.origin.x, forKey: .x)
        try origin.encode(self.origin.y, forKey: .y)
        var grid = container.nestedUnkeyedContainer(forKey: .grid)
        for row in rows {
            var nested = grid.nestedUnkeyedContainer()
            for value in row { try nested.encode(value) }
        }
        var labels = container.nestedUnkeyedContainer(forKey: .labels)
        for label in self.labels {
            var entry = labels.nestedContainer(keyedBy: Keys.self)
            try entry.encode(label, forKey: .labels)
        }
        if let maybe { try labels.encode(maybe) } else { try labels.encodeNil() }
        try Point(x: 9, y: 9).encode(to: labels.superEncoder())
    }

    init(from decoder: any Decoder) throws {
        let container = try decoder.container(keyedBy: Keys.self)
        // Two nested unkeyed containers of one keyed container, read alternately.
        var labels = try container.nestedUnkeyedContainer(forKey: .labels)
        var grid = try container.nestedUnkeyedContainer(forKey: .grid)
        var rows: [[Int]] = []
        var names: [String] = []
        while !grid.isAtEnd {
            var nested = try grid.nestedUnkeyedContainer()
            var row: [Int] = []
            while !nested.isAtEnd { row.append(try nested.decode(Int.self)) }
            rows.append(row)
            if names.count < (labels.count ?? 0) - 2 {
                names.append(
                    try labels.nestedContainer(keyedBy: Keys.self).decode(String.self, forKey: .labels))
            }
        }
        while names.count < (labels.count ?? 0) - 2 {
            names.append(try labels.nestedContainer(keyedBy: Keys.self).decode(String.self, forKey: .labels))
        }
        maybe = try labels.decodeNil() ? nil : try labels.decode(Int.self)
        let tail = try Point(from: labels.superDecoder())
        guard tail == Point(x: 9, y: 9), labels.isAtEnd else { throw CodecError.invalidValue("bad tail") }
        let origin = try container.nestedContainer(keyedBy: PointKeys.self, forKey: .origin)
        self.origin = Point(
            x: try origin.decode(Int.self, forKey: .x), y: try origin.decode(Int.self, forKey: .y))
        self.rows = rows
        self.labels = names
    }
}

/// Reads the entry "7" (out of order, among others) through a String-only coding key.
private struct Numbered: Decodable, Equatable {
    var seven: String

    private enum CodingKeys: String, CodingKey { case seven = "7" }
}

private struct User: Codable, Equatable {
    var name: String
    var age: Int
}

private struct UserV2: Codable, Equatable {
    var name: String
    var age: Int
    var email: String
}

private struct Wrapper<T: Codable & Equatable>: Codable, Equatable {
    var inner: T
}

/// `var inner: Int?` is encoded with `encodeIfPresent`: a nil leaves the key out.
private struct OptionalInner: Codable, Equatable {
    var inner: Int?
}

/// Writes an explicit nil under `inner`.
private struct ExplicitNil: Codable, Equatable {
    private enum CodingKeys: CodingKey { case inner }

    func encode(to encoder: any Encoder) throws {
        var container = encoder.container(keyedBy: CodingKeys.self)
        try container.encodeNil(forKey: .inner)
    }

    init() {}
    init(from decoder: any Decoder) throws {}
}

private struct Failing: Codable, Equatable {
    struct Oops: Error, CustomStringConvertible {
        var description: String { "oops from user code" }
    }

    init() {}
    init(from decoder: any Decoder) throws { throw Oops() }
    func encode(to encoder: any Encoder) throws { throw Oops() }
}

/// Keeps whatever `init(from:)` hands it, to check that escaped decoders fail safely.
private final class Stash: @unchecked Sendable {
    var decoder: (any Decoder)?
    var container: (any UnkeyedDecodingContainer)?
}

private let stashKey = CodingUserInfoKey(rawValue: "stash")!

private struct Escaping: Codable {
    var values: [Int16]

    init(values: [Int16]) { self.values = values }

    func encode(to encoder: any Encoder) throws {
        var container = encoder.unkeyedContainer()
        for value in values { try container.encode(value) }
    }

    init(from decoder: any Decoder) throws {
        var container = try decoder.unkeyedContainer()
        values = [try container.decode(Int16.self)]
        let stash = decoder.userInfo[stashKey] as? Stash
        stash?.decoder = decoder
        stash?.container = container
    }
}

private struct Deep: Codable {
    var next: [Deep]

    static func chain(_ depth: Int) -> Deep {
        var value = Deep(next: [])
        for _ in 0..<depth { value = Deep(next: [value]) }
        return value
    }
}

/// A reproducible generator for the fuzz tests.
private struct SplitMix64: RandomNumberGenerator {
    var state: UInt64

    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}

// MARK: - Helpers

private func roundTrip<T: Codable & Equatable>(
    _ value: T, sourceLocation: SourceLocation = #_sourceLocation
) throws {
    let bytes = try BinaryEncoder().encode(value)
    let decoded = try BinaryDecoder().decode(T.self, from: bytes)
    #expect(decoded == value, sourceLocation: sourceLocation)
}

/// Decodes and reports only whether it succeeded (the API only throws CodecError).
private func decodes<T: Decodable>(_ type: T.Type, _ bytes: [UInt8]) -> Bool {
    do {
        _ = try BinaryDecoder().decode(type, from: bytes)
        return true
    } catch {
        return false
    }
}

// MARK: - Tests

@Suite struct CodecTests {
    @Test func integersRoundTripAtTheirLimits() throws {
        for value in [AllIntegers.minimums, .maximums, .mixed] {
            try roundTrip(value)
            try roundTrip(Box(value: value))
            try roundTrip([value, value])
        }
        for value in [0, 1, -1, 63, -64, 64, 127, 128, 300, -300, .max, .min] {
            try roundTrip(value)
            try roundTrip(Box(value: value))
            try roundTrip(Box(value: Int64(value)))
        }
        try roundTrip(Box(value: Int128.min))
        try roundTrip(Box(value: UInt128.max))
        try roundTrip([Int128.min, 0, .max])
    }

    @Test func floatingPointIsBitExact() throws {
        let doubles: [Double] = [
            0, -0.0, 1.5, -2.25, .infinity, -.infinity, .nan, .signalingNaN, .leastNonzeroMagnitude,
            .greatestFiniteMagnitude, Double(bitPattern: 0x7FF8_0000_0000_1234),
            Double(bitPattern: 0xFFF0_0000_0000_0001),
        ]
        let floats: [Float] = [
            0, -0.0, .infinity, -.infinity, .nan, Float(bitPattern: 0x7FC0_1234), .leastNormalMagnitude,
        ]
        let encoder = BinaryEncoder()
        let decoder = BinaryDecoder()
        for value in doubles {
            let single = try decoder.decode(Double.self, from: encoder.encode(value))
            #expect(single.bitPattern == value.bitPattern)
            let boxed = try decoder.decode(Box<[Double]>.self, from: encoder.encode(Box(value: [value])))
            #expect(boxed.value[0].bitPattern == value.bitPattern)
        }
        let bulk = try decoder.decode([Double].self, from: encoder.encode(doubles))
        #expect(bulk.map(\.bitPattern) == doubles.map(\.bitPattern))
        let bulkFloats = try decoder.decode([Float].self, from: encoder.encode(floats))
        #expect(bulkFloats.map(\.bitPattern) == floats.map(\.bitPattern))
        for value in floats {
            let keyed = try decoder.decode(Wrapper<Float>.self, from: encoder.encode(Wrapper(inner: value)))
            #expect(keyed.inner.bitPattern == value.bitPattern)
        }
    }

    @Test func stringsAndBools() throws {
        for value in [
            "", "a", "héllo", "日本語テキスト", "🏳️‍🌈 emoji", "nul\0inside", String(repeating: "x", count: 1000),
        ] {
            try roundTrip(value)
            try roundTrip(Box(value: value))
            try roundTrip([value, value])
        }
        try roundTrip(true)
        try roundTrip(false)
        try roundTrip([true, false, false, true])
        try roundTrip(Box(value: true))
    }

    @Test func optionalsIncludingNested() throws {
        let values: [Int??] = [.none, .some(.none), .some(.some(0)), .some(.some(-7))]
        for value in values {
            try roundTrip(value)
            try roundTrip(Box(value: value))
            try roundTrip([value])
        }
        try roundTrip([1, nil, 3] as [Int?])
        try roundTrip(Box<String?>(value: nil))
        try roundTrip(Optional([1.5, 2.5]))
        try roundTrip([Point(x: 1, y: 2), nil] as [Point?])
        #expect(try BinaryEncoder().encode(Int?.none) == [0])
    }

    @Test func collections() throws {
        try roundTrip([[1, 2], [], [3]])
        try roundTrip(["a", "b", ""])
        try roundTrip(Set(["x", "y", "z"]))
        try roundTrip(Set([1, 5, 9]))
        try roundTrip(["one": 1, "two": 2, "": 0, "042": 42, "7": 7])
        try roundTrip([Int.min: "min", -1: "minus one", 0: "zero", Int.max: "max"])
        try roundTrip([Color.red: 1, .blue: 3])
        try roundTrip([Level.low: "l", .high: "h"])
        try roundTrip([Point(x: 1, y: 2): "a", Point(x: 3, y: 4): "b"])
        try roundTrip(["outer": ["inner": [1, 2, 3]]])
        try roundTrip([Empty(), Empty(), Empty()])
        try roundTrip(Box(value: [Empty()]))
        try roundTrip([Silent(), Silent()])
        try roundTrip([Box(value: Silent())])
        #expect(try BinaryEncoder().encode([Silent(), Silent()]) == [2, 0, 0])
        let big = Dictionary(uniqueKeysWithValues: (0..<2000).map { ("key\($0)", $0) })
        try roundTrip(big)
    }

    @Test func rawArrays() throws {
        try roundTrip([UInt8](0...255))
        try roundTrip([Int8.min, -1, 0, .max])
        try roundTrip([Int16.min, 0, .max])
        try roundTrip([UInt16.max, 0])
        try roundTrip([Int32.min, 0, .max])
        try roundTrip([UInt32.max, 1])
        try roundTrip([Int64.min, .max])
        try roundTrip([UInt64.max, 0])
        try roundTrip([Int.min, -1, .max])
        try roundTrip([UInt.max, 3])
        try roundTrip(ContiguousArray([1, 2, 3]))
        try roundTrip([Double]())
        // ArraySlice is not Codable; its bytes go in bulk through encode(contentsOf:).
        let bytes: [UInt8] = [9, 8, 7, 6, 5]
        try roundTrip(ByteView(bytes: bytes[1..<4]))
        try roundTrip(Box(value: ByteView(bytes: bytes[2...])))
        #expect(try BinaryEncoder().encode(ByteView(bytes: bytes[1..<4])) == [3, 8, 7, 6])
        try roundTrip(Samples(samples: (0..<100).map { Double($0) / 3 }))
        #expect(try BinaryEncoder().encode([UInt8]([1, 2])) == [2, 1, 2])
    }

    @Test func enumsStructsClassesAndGenerics() throws {
        for shape in [Shape.circle(radius: 1), .rectangle(width: 2, height: 3), .labeled("x", -1), .empty] {
            try roundTrip(shape)
        }
        try roundTrip(Tree.make(depth: 6))
        try roundTrip(
            Node(
                name: "root",
                children: [
                    Node(name: "a", children: []), Node(name: "b", children: [Node(name: "c", children: [])]),
                ]))
        try roundTrip(Document.sample)
        try roundTrip([Document.sample, Document.sample])
        try roundTrip(Box(value: Box(value: [Shape.empty])))
        try roundTrip(Celsius(degrees: -40))
        try roundTrip([Celsius(degrees: 1), Celsius(degrees: 2)])
        try roundTrip(Wide())

        let dog = try BinaryDecoder().decode(
            Dog.self, from: BinaryEncoder().encode(Dog(name: "Rex", breed: "Collie")))
        #expect(dog.name == "Rex" && dog.breed == "Collie")
        let cat = try BinaryDecoder().decode(
            Cat.self, from: BinaryEncoder().encode(Cat(name: "Tom", lives: 9)))
        #expect(cat.name == "Tom" && cat.lives == 9)
        let animals = try BinaryDecoder().decode([Dog].self, from: BinaryEncoder().encode([dog, dog]))
        #expect(animals.map(\.breed) == ["Collie", "Collie"])
    }

    @Test func handWrittenContainers() throws {
        try roundTrip(
            Layout(
                origin: Point(x: -5, y: 6), rows: [[1, 2, 3], [], [4]], labels: ["p", "q", "r", "s"],
                maybe: 12))
        try roundTrip(Layout(origin: Point(x: 0, y: 0), rows: [], labels: [], maybe: nil))
        // Large enough to widen the patched count and length slots past one byte.
        let rows = (0..<300).map { Array(0..<($0 % 7)) }
        let labels = (0..<200).map { "label \($0)" }
        try roundTrip(Layout(origin: Point(x: 1, y: 1), rows: rows, labels: labels, maybe: 3))
    }

    @Test func keysReadOutOfOrderWithContainsAndAllKeys() throws {
        let value = Reordered(a: 1, b: "two", c: [3, 4], extra: 5)
        let decoded = try BinaryDecoder().decode(Reordered.self, from: BinaryEncoder().encode(value))
        #expect(decoded == Reordered(a: 1, b: "two", c: [3, 4], extra: 5))
        #expect(decoded.keyCount == 4)
        let withoutExtra = try BinaryDecoder().decode(
            Reordered.self, from: BinaryEncoder().encode(Reordered(a: 1, b: "", c: [], extra: nil)))
        #expect(withoutExtra.extra == nil && withoutExtra.keyCount == 3)
    }

    @Test func keysMatchByTheirTextWhicheverFormTheyTravelIn() throws {
        // Int-keyed dictionary entries are written as Ints; a String-keyed reader still finds them.
        let bytes = try BinaryEncoder().encode([7: "seven", -3: "minus three"])
        #expect(
            try BinaryDecoder().decode([String: String].self, from: bytes) == [
                "7": "seven", "-3": "minus three",
            ])
        #expect(try BinaryDecoder().decode(Numbered.self, from: bytes) == Numbered(seven: "seven"))
        let many = Dictionary(uniqueKeysWithValues: (0..<20).map { ($0, "v\($0)") })
        #expect(
            try BinaryDecoder().decode(Numbered.self, from: BinaryEncoder().encode(many))
                == Numbered(seven: "v7"))
    }

    @Test func compactSizes() throws {
        let encoder = BinaryEncoder()
        #expect(try encoder.encode(5).count == 1)
        #expect(try encoder.encode(-64).count == 1)
        #expect(try encoder.encode(true).count == 1)
        #expect(try encoder.encode("abc") == [3, 97, 98, 99])
        #expect(try encoder.encode(UInt64.max).count == 10)
        #expect(try encoder.encode(1.0).count == 8)
        let samples = (0..<1000).map { Double($0) }
        #expect(try encoder.encode(samples).count <= 8000 + 4)
        #expect(try encoder.encode(Samples(samples: samples)).count <= 8000 + 16)
        #expect(try encoder.encode([UInt8](repeating: 1, count: 1000)).count == 1002)
        #expect(try encoder.encode(Point(x: 1, y: 2)) == [4, 120, 2, 2, 4, 121, 2, 4, 0])
    }

    @Test func appendingReusesTheBufferAndRestoresItOnFailure() throws {
        var buffer: [UInt8] = [0xAA]
        buffer.reserveCapacity(4096)
        let capacity = buffer.capacity
        try BinaryEncoder().encode(Document.sample, appendingTo: &buffer)
        try BinaryEncoder().encode(7, appendingTo: &buffer)
        #expect(buffer.first == 0xAA && buffer.last == 14)
        #expect(buffer.capacity == capacity)
        let document = try BinaryDecoder().decode(Document.self, from: Array(buffer[1..<(buffer.count - 1)]))
        #expect(document == .sample)

        let before = buffer
        #expect(throws: CodecError.self) { try BinaryEncoder().encode([Failing()], appendingTo: &buffer) }
        #expect(buffer == before)
    }

    @Test func userInfoReachesEncodeAndDecode() throws {
        struct Probe: Codable, Equatable {
            static let key = CodingUserInfoKey(rawValue: "probe")!
            var seen: String
            init(seen: String) { self.seen = seen }
            init(from decoder: any Decoder) throws {
                _ = try decoder.singleValueContainer().decode(String.self)
                seen = decoder.userInfo[Probe.key] as? String ?? "nothing"
            }
            func encode(to encoder: any Encoder) throws {
                var container = encoder.singleValueContainer()
                try container.encode(encoder.userInfo[Probe.key] as? String ?? "nothing")
            }
        }
        var encoder = BinaryEncoder()
        encoder.userInfo[Probe.key] = "from encoder"
        var decoder = BinaryDecoder()
        decoder.userInfo[Probe.key] = "from decoder"
        let bytes = try encoder.encode(Box(value: Probe(seen: "")))
        #expect(try BinaryDecoder().decode(Box<String>.self, from: bytes).value == "from encoder")
        #expect(try decoder.decode(Box<Probe>.self, from: bytes).value.seen == "from decoder")
    }

    @Test func everyTruncationFails() throws {
        let bytes = try BinaryEncoder().encode(Document.sample)
        for length in 0..<bytes.count {
            #expect(throws: CodecError.self) {
                try BinaryDecoder().decode(Document.self, from: Array(bytes[..<length]))
            }
        }
        let layout = try BinaryEncoder().encode(
            Layout(origin: Point(x: 1, y: 2), rows: [[1], [2, 3]], labels: ["a"], maybe: 4))
        for length in 0..<layout.count {
            #expect(throws: CodecError.self) {
                try BinaryDecoder().decode(Layout.self, from: Array(layout[..<length]))
            }
        }
    }

    @Test func absurdLengthsFailFastWithoutAllocating() throws {
        // A 9-byte varint claiming 2^60 elements.
        let claim: [UInt8] = [0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x10]
        #expect(throws: CodecError.lengthTooLarge(1 << 60)) {
            try BinaryDecoder().decode([Int].self, from: claim)
        }
        #expect(throws: CodecError.lengthTooLarge(1 << 60)) {
            try BinaryDecoder().decode([Point].self, from: claim)
        }
        #expect(throws: CodecError.lengthTooLarge(1 << 60)) {
            try BinaryDecoder().decode(Set<Int>.self, from: claim)
        }
        let unbounded = BinaryDecoder(maximumCollectionCount: .max)
        #expect(throws: CodecError.truncated(needed: .max, available: 0)) {
            try unbounded.decode([Int].self, from: claim)
        }
        #expect(throws: CodecError.truncated(needed: 1 << 60, available: 0)) {
            try unbounded.decode([String].self, from: claim)
        }
        #expect(throws: CodecError.truncated(needed: 1 << 60, available: 0)) {
            try unbounded.decode(String.self, from: claim)
        }
        // Counts are bounded by the remaining bytes too.
        #expect(throws: CodecError.truncated(needed: 800, available: 3)) {
            try BinaryDecoder().decode([Double].self, from: [100, 1, 2, 3])
        }
        #expect(throws: CodecError.lengthTooLarge(5)) {
            try BinaryDecoder(maximumCollectionCount: 4).decode([UInt8].self, from: [5, 1, 2, 3, 4, 5])
        }
        // A keyed entry whose length prefix points past the end.
        #expect(throws: CodecError.self) {
            try BinaryDecoder().decode(Point.self, from: [4, 120, 0xFF, 0x7F, 0])
        }
        // A varint longer than 64 bits.
        #expect(throws: CodecError.invalidValue("varint overflows 64 bits")) {
            try BinaryDecoder().decode(UInt64.self, from: [UInt8](repeating: 0xFF, count: 10) + [1])
        }
    }

    @Test func invalidValuesAreRejected() throws {
        let decoder = BinaryDecoder()
        #expect(throws: CodecError.invalidValue("Bool byte 2 (expected 0 or 1)")) {
            try decoder.decode(Bool.self, from: [2])
        }
        #expect(throws: CodecError.invalidValue("Bool byte 7 (expected 0 or 1)")) {
            try decoder.decode([Bool].self, from: [2, 1, 7])
        }
        #expect(throws: CodecError.invalidValue("string is not valid UTF-8")) {
            try decoder.decode(String.self, from: [2, 0xC3, 0x28])
        }
        #expect(throws: CodecError.invalidValue("string is not valid UTF-8")) {
            try decoder.decode(String.self, from: [1, 0xFF])
        }
        #expect(throws: CodecError.invalidValue("optional tag 2 (expected 0 or 1)")) {
            try decoder.decode(Int?.self, from: [2, 0])
        }
        let big = try BinaryEncoder().encode(70_000)
        #expect(throws: CodecError.invalidValue("integer 70000 is out of range for Int16")) {
            try decoder.decode(Int16.self, from: big)
        }
        #expect(throws: CodecError.self) {
            try decoder.decode(UInt32.self, from: BinaryEncoder().encode(UInt64.max))
        }
        #expect(throws: CodecError.self) {
            try decoder.decode(Box<Int8>.self, from: BinaryEncoder().encode(Box(value: 300)))
        }
        // Wrong types: never a crash, and an error where the shape can tell.
        let ints = try BinaryEncoder().encode([1, 2, 3, 4000])
        _ = decodes(String.self, ints)
        _ = decodes(Document.self, ints)
        _ = decodes([String: Int].self, ints)
        #expect(throws: CodecError.self) {
            try decoder.decode(Point.self, from: BinaryEncoder().encode("not a point"))
        }
        #expect(throws: CodecError.self) {
            try decoder.decode(Wrapper<Int>.self, from: BinaryEncoder().encode(Wrapper(inner: "text")))
        }
    }

    @Test func trailingBytesAreReported() throws {
        #expect(throws: CodecError.trailingBytes(1)) { try BinaryDecoder().decode(Int.self, from: [10, 0]) }
        var bytes = try BinaryEncoder().encode(Document.sample)
        bytes += [1, 2, 3]
        #expect(throws: CodecError.trailingBytes(3)) {
            try BinaryDecoder().decode(Document.self, from: bytes)
        }
    }

    @Test func missingKeysAndMismatchesCarryTheirPath() throws {
        let user = try BinaryEncoder().encode(User(name: "ann", age: 3))
        #expect(throws: CodecError.keyNotFound("email", codingPath: "")) {
            try BinaryDecoder().decode(UserV2.self, from: user)
        }
        let wrapped = try BinaryEncoder().encode(
            Wrapper(inner: [User(name: "a", age: 1), User(name: "b", age: 2)]))
        #expect(throws: CodecError.keyNotFound("email", codingPath: "inner[0]")) {
            try BinaryDecoder().decode(Wrapper<[UserV2]>.self, from: wrapped)
        }
        let mismatch = try BinaryEncoder().encode(Wrapper(inner: Wrapper(inner: "text")))
        #expect(
            throws: CodecError.typeMismatch(
                expected: "Int (the entry holds 4 more byte(s))", codingPath: "inner.inner")
        ) {
            try BinaryDecoder().decode(Wrapper<Wrapper<Int>>.self, from: mismatch)
        }
        let omitted = try BinaryEncoder().encode(OptionalInner(inner: nil))
        #expect(throws: CodecError.keyNotFound("inner", codingPath: "")) {
            try BinaryDecoder().decode(Wrapper<Int>.self, from: omitted)
        }
        let explicitNil = try BinaryEncoder().encode(Wrapper(inner: ExplicitNil()))
        #expect(throws: CodecError.typeMismatch(expected: "Int (found nil)", codingPath: "inner.inner")) {
            try BinaryDecoder().decode(Wrapper<Wrapper<Int>>.self, from: explicitNil)
        }
    }

    @Test func userErrorsAreWrapped() throws {
        #expect(throws: CodecError.encodingFailed("oops from user code")) {
            try BinaryEncoder().encode(Box(value: Failing()))
        }
        #expect(throws: CodecError.decodingFailed("oops from user code")) {
            try BinaryDecoder().decode(Failing.self, from: [])
        }
        // A DecodingError thrown by the standard library (an enum with two keys) is wrapped too.
        var twoKeys = try BinaryEncoder().encode(Shape.empty)
        twoKeys.removeLast()
        twoKeys += try BinaryEncoder().encode(Shape.circle(radius: 1))
        do {
            _ = try BinaryDecoder().decode(Shape.self, from: twoKeys)
            Issue.record("expected an error")
        } catch {
            guard case .decodingFailed = error else {
                Issue.record("unexpected \(error)")
                return
            }
        }
    }

    @Test func escapedDecodersFailInsteadOfReadingFreedMemory() throws {
        let stash = Stash()
        var decoder = BinaryDecoder()
        decoder.userInfo[stashKey] = stash
        let bytes = try BinaryEncoder().encode(Escaping(values: [1, 2]))
        #expect(throws: CodecError.trailingBytes(1)) { try decoder.decode(Escaping.self, from: bytes) }
        let escaped = try #require(stash.decoder)
        #expect(throws: (any Error).self) { try escaped.unkeyedContainer() }
        #expect(throws: (any Error).self) { try escaped.singleValueContainer().decode(Int.self) }
        var container = try #require(stash.container)
        #expect(throws: (any Error).self) { try container.decode(Int16.self) }
    }

    @Test func nestingDepthIsBounded() throws {
        var encoder = BinaryEncoder()
        #expect(encoder.maximumDepth == BinaryDecoder().maximumDepth)
        // Every Deep and every array is a level: chain(15) nests 32 deep, chain(16) 34.
        _ = try encoder.encode(Deep.chain(15))
        #expect(throws: CodecError.nestingTooDeep(limit: 32)) { try encoder.encode(Deep.chain(16)) }
        encoder.maximumDepth = 700
        let bytes = try encoder.encode(Deep.chain(300))
        #expect(throws: CodecError.nestingTooDeep(limit: 32)) {
            try BinaryDecoder().decode(Deep.self, from: bytes)
        }
        var decoder = BinaryDecoder()
        decoder.maximumDepth = 700
        _ = try decoder.decode(Deep.self, from: bytes)
    }

    @Test func randomBytesNeverCrash() throws {
        var random = SplitMix64(state: 0x5EED)
        var successes = 0
        for round in 0..<4000 {
            let count = Int.random(in: 0..<48, using: &random)
            var bytes = (0..<count).map { _ in UInt8.random(in: 0...255, using: &random) }
            // Bias a quarter of the inputs towards small values so they reach deeper paths.
            if round % 4 == 0 { bytes = bytes.map { $0 & 0x0F } }
            if decodes(Document.self, bytes) { successes += 1 }
            if decodes(Tree.self, bytes) { successes += 1 }
            if decodes(Layout.self, bytes) { successes += 1 }
            if decodes([String: [Int?]].self, bytes) { successes += 1 }
            if decodes(Shape.self, bytes) { successes += 1 }
            if decodes([Point: [Bool]].self, bytes) { successes += 1 }
        }
        #expect(successes > 0)
    }

    @Test func mutatedEncodingsNeverCrash() throws {
        var random = SplitMix64(state: 42)
        let originals = [
            try BinaryEncoder().encode(Document.sample),
            try BinaryEncoder().encode(
                Layout(origin: Point(x: 3, y: 4), rows: [[1, 2], [3]], labels: ["x", "y"], maybe: nil)),
        ]
        for round in 0..<3000 {
            var bytes = originals[round % 2]
            for _ in 0..<Int.random(in: 1...4, using: &random) {
                let index = Int.random(in: 0..<bytes.count, using: &random)
                switch Int.random(in: 0..<3, using: &random) {
                case 0: bytes[index] ^= UInt8(1) << UInt8.random(in: 0..<8, using: &random)
                case 1: bytes[index] = UInt8.random(in: 0...255, using: &random)
                default: bytes.remove(at: index)
                }
            }
            _ = decodes(Document.self, bytes)
            _ = decodes(Layout.self, bytes)
        }
    }
}
