/// The array types with a top-level fast path, looked up once: naming `[Int].self` in a hot
/// generic function costs a runtime metadata lookup on every call.
enum PlainArrays {
    static let int = ObjectIdentifier([Int].self)
    static let double = ObjectIdentifier([Double].self)
    static let uint8 = ObjectIdentifier([UInt8].self)
    static let int64 = ObjectIdentifier([Int64].self)
    static let int32 = ObjectIdentifier([Int32].self)
    static let uint64 = ObjectIdentifier([UInt64].self)
    static let float = ObjectIdentifier([Float].self)
}
