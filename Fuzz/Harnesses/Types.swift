// Types the decoder harness decodes: one of each shape the wire format has (nested structs,
// enums with payloads, optionals, arrays with and without the raw fast path, dictionaries,
// strings, recursion, hand-written containers, descriptors).

struct Point: Codable, Hashable {
    var x: Int32
    var y: Int32
}

enum Shape: Codable {
    case circle(radius: Double)
    case rectangle(width: Float, height: Float)
    case labeled(String, Int)
    case polygon([Point])
    case empty
    indirect case group(Shape?, [Shape])
}

struct Document: Codable {
    var title: String
    var version: Int
    var ratio: Double?
    var flags: [Bool]
    var tags: [String: [Int?]]
    var origin: Point
    var shapes: [Shape]
    var raw: [UInt8]
    var big: Int128
    var unsigned: UInt64
    var nested: [[Int16]]
    var byPoint: [Point: String]
}

indirect enum Tree: Codable {
    case leaf(Int)
    case node(Tree, Tree)
    case maybe(Tree?)
}

struct Node: Codable {
    var name: String
    var children: [Node]
}

final class Linked: Codable {
    var value: UInt8
    var next: Linked?

    init(value: UInt8, next: Linked?) {
        self.value = value
        self.next = next
    }
}

/// A base class whose subclass encodes through `superEncoder`.
class Base: Codable {
    var id: Int
    init(id: Int) { self.id = id }
}

final class Derived: Base {
    var label: String?
    enum CodingKeys: String, CodingKey { case label }

    init(id: Int, label: String?) {
        self.label = label
        super.init(id: id)
    }

    required init(from decoder: any Decoder) throws {
        let container = try decoder.container(keyedBy: CodingKeys.self)
        label = try container.decodeIfPresent(String.self, forKey: .label)
        try super.init(from: container.superDecoder())
    }

    override func encode(to encoder: any Encoder) throws {
        var container = encoder.container(keyedBy: CodingKeys.self)
        try container.encodeIfPresent(label, forKey: .label)
        try super.encode(to: container.superEncoder())
    }
}

/// Reads whatever keys are there, nested containers of both kinds, nils and super decoders.
struct HandWritten: Codable {
    var keys: [String]
    var numbers: [Int64]
    var texts: [String?]
    var inner: [String: Double]

    struct AnyKey: CodingKey {
        var stringValue: String
        var intValue: Int?
        init(stringValue: String) { self.stringValue = stringValue }
        init(intValue: Int) {
            self.stringValue = String(intValue)
            self.intValue = intValue
        }
    }

    init(keys: [String], numbers: [Int64], texts: [String?], inner: [String: Double]) {
        self.keys = keys
        self.numbers = numbers
        self.texts = texts
        self.inner = inner
    }

    func encode(to encoder: any Encoder) throws {
        var container = encoder.container(keyedBy: AnyKey.self)
        var list = container.nestedUnkeyedContainer(forKey: AnyKey(stringValue: "numbers"))
        for number in numbers { try list.encode(number) }
        var texts = container.nestedUnkeyedContainer(forKey: AnyKey(stringValue: "texts"))
        for text in self.texts {
            if let text { try texts.encode(text) } else { try texts.encodeNil() }
        }
        var inner = container.nestedContainer(keyedBy: AnyKey.self, forKey: AnyKey(intValue: 7))
        for (key, value) in self.inner { try inner.encode(value, forKey: AnyKey(stringValue: key)) }
        try container.encode(keys, forKey: AnyKey(stringValue: "keys"))
        try Point(x: 1, y: 2).encode(to: container.superEncoder())
    }

    init(from decoder: any Decoder) throws {
        let container = try decoder.container(keyedBy: AnyKey.self)
        keys = container.allKeys.map(\.stringValue)
        numbers = []
        if container.contains(AnyKey(stringValue: "numbers")) {
            var list = try container.nestedUnkeyedContainer(forKey: AnyKey(stringValue: "numbers"))
            while !list.isAtEnd { numbers.append(try list.decode(Int64.self)) }
        }
        texts = []
        if container.contains(AnyKey(stringValue: "texts")) {
            var list = try container.nestedUnkeyedContainer(forKey: AnyKey(stringValue: "texts"))
            while !list.isAtEnd {
                texts.append(try list.decodeNil() ? nil : try list.decode(String.self))
            }
        }
        inner = [:]
        if container.contains(AnyKey(intValue: 7)) {
            let nested = try container.nestedContainer(keyedBy: AnyKey.self, forKey: AnyKey(intValue: 7))
            for key in nested.allKeys { inner[key.stringValue] = try nested.decode(Double.self, forKey: key) }
        }
        if container.contains(AnyKey(stringValue: "super")) {
            _ = try Point(from: container.superDecoder())
        }
    }
}

/// A message that carries descriptors (as channel and pool messages do).
struct WithDescriptors: Codable {
    var label: String
    var passed: PassedDescriptors
    var more: [PassedDescriptors]
}
