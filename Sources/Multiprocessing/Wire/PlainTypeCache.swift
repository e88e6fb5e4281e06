/// The last four types seen to have no special wire form: a tiny cache that lets the encoder and
/// decoder skip a protocol cast for the types a message repeats.
struct PlainTypeCache {
    private var slots: (ObjectIdentifier?, ObjectIdentifier?, ObjectIdentifier?, ObjectIdentifier?) = (
        nil, nil, nil, nil
    )
    private var next = 0

    @inline(__always)
    func contains(_ id: ObjectIdentifier) -> Bool {
        slots.0 == id || slots.1 == id || slots.2 == id || slots.3 == id
    }

    mutating func insert(_ id: ObjectIdentifier) {
        switch next & 3 {
        case 0: slots.0 = id
        case 1: slots.1 = id
        case 2: slots.2 = id
        default: slots.3 = id
        }
        next &+= 1
    }
}
