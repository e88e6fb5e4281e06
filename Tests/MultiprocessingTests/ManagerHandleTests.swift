import Testing

@testable import Multiprocessing

/// The fields of a container handle, as ``LogSegment/encode(to:type:)`` writes them, so that a
/// test can forge one.
struct ContainerHandleFields: Codable {
    var memory: SharedMemory
    var kind: UInt32
    var capacity: Int
    var type: String

    init(memory: SharedMemory, kind: UInt32, capacity: Int, type: String) {
        self.memory = memory
        self.kind = kind
        self.capacity = capacity
        self.type = type
    }

    init(from decoder: any Decoder) throws {
        var container = try decoder.unkeyedContainer()
        memory = try container.decode(SharedMemory.self)
        kind = try container.decode(UInt32.self)
        capacity = try container.decode(Int.self)
        type = try container.decode(String.self)
    }

    func encode(to encoder: any Encoder) throws {
        var container = encoder.unkeyedContainer()
        try container.encode(memory)
        try container.encode(kind)
        try container.encode(capacity)
        try container.encode(type)
    }
}

@Suite("Manager: forged handles")
struct ManagerForgedHandleTests {
    @Test("a handle with a capacity so large that doubling it overflows is refused, not a trap")
    func overflowingCapacityIsRefused() throws {
        let dictionary = try Manager(capacity: 4096).dictionary([String: Int].self)
        let fields = try handleRoundTrip(dictionary, as: ContainerHandleFields.self)
        #expect(fields.capacity == 4096)
        for capacity in [1 << 62, Int.max / 8 * 8, (Int.max / 16 + 1) * 8] {
            let forged = ContainerHandleFields(
                memory: fields.memory, kind: fields.kind, capacity: capacity, type: fields.type)
            #expect(throws: (any Error).self) {
                _ = try handleRoundTrip(forged, as: SharedDictionary<String, Int>.self)
            }
        }
        // The genuine fields still make a working handle.
        let copy = try handleRoundTrip(fields, as: SharedDictionary<String, Int>.self)
        try dictionary.updateValue(1, forKey: "a")
        #expect(try copy.value(forKey: "a") == 1)
    }
}
