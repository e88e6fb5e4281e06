struct BinarySingleValueDecodingContainer: SingleValueDecodingContainer {
    let core: BinaryDecodingCore
    let start: Int
    let limit: Int

    var codingPath: [any CodingKey] { [] }

    /// Points the cursor at the value unless it already is at or past it in this region.
    @inline(__always)
    private func seat() throws {
        try core.checkAlive()
        if core.limit != limit || core.pos < start {
            core.pos = start
            core.limit = limit
        }
    }

    func decodeNil() -> Bool {
        guard (try? seat()) != nil, core.pos < core.limit, core.byte(at: core.pos) == 0 else { return false }
        core.pos += 1
        return true
    }

    func decode(_ type: Bool.Type) throws -> Bool {
        try seat()
        return try core.readBool()
    }

    func decode(_ type: String.Type) throws -> String {
        try seat()
        return try core.readString()
    }

    func decode(_ type: Double.Type) throws -> Double {
        try seat()
        return Double(bitPattern: try core.readFixed(UInt64.self))
    }

    func decode(_ type: Float.Type) throws -> Float {
        try seat()
        return Float(bitPattern: try core.readFixed(UInt32.self))
    }

    func decode(_ type: Int.Type) throws -> Int { try value(Int.self) }
    func decode(_ type: Int8.Type) throws -> Int8 { try value(Int8.self) }
    func decode(_ type: Int16.Type) throws -> Int16 { try value(Int16.self) }
    func decode(_ type: Int32.Type) throws -> Int32 { try value(Int32.self) }
    func decode(_ type: Int64.Type) throws -> Int64 { try value(Int64.self) }
    func decode(_ type: Int128.Type) throws -> Int128 { try value(Int128.self) }
    func decode(_ type: UInt.Type) throws -> UInt { try value(UInt.self) }
    func decode(_ type: UInt8.Type) throws -> UInt8 { try value(UInt8.self) }
    func decode(_ type: UInt16.Type) throws -> UInt16 { try value(UInt16.self) }
    func decode(_ type: UInt32.Type) throws -> UInt32 { try value(UInt32.self) }
    func decode(_ type: UInt64.Type) throws -> UInt64 { try value(UInt64.self) }
    func decode(_ type: UInt128.Type) throws -> UInt128 { try value(UInt128.self) }

    func decode<T: Decodable>(_ type: T.Type) throws -> T {
        try value(T.self)
    }

    @inline(__always)
    private func value<T: Decodable>(_: T.Type) throws -> T {
        try seat()
        return try core.decodeValue(T.self)
    }
}
