/// The bytes of one keyed container: entries in `start..<stop`, the end byte at `stop`.
struct KeyedRegion {
    var start: Int
    var stop: Int
    var end: Int
    var count: Int

    static let none = KeyedRegion(start: -1, stop: 0, end: 0, count: 0)
}

/// One parsed keyed entry.
struct KeyedEntry {
    var isEnd: Bool
    var keyIsInt: Bool
    /// Zigzag Int for Int keys, UTF-8 count + 1 for String keys.
    var keyPayload: UInt64
    var keyStart: Int
    var valueStart: Int
    var valueEnd: Int
    var isNil: Bool
    var next: Int
}

// Keyed containers carry their keys, so `init(from:)` may read them in any order: entries are
// parsed on demand, found by a forward scan from the last match, or by an index for large
// containers read out of order.
extension BinaryDecodingCore {
    /// Parses the entry (or end byte) at `offset`; all of it must lie below `limit`.
    func parseEntry(at offset: Int, limit: Int) throws -> KeyedEntry {
        var p = offset
        guard p < limit else { throw fail(.truncated(needed: 1, available: 0)) }
        let first = byte(at: p)
        p += 1
        var payload = UInt64((first >> 1) & 0x3f)
        if first & 0x80 != 0 {
            let rest = try varint(at: &p, limit: limit)
            guard rest >> 58 == 0 else { throw fail(.invalidValue("key header overflows 64 bits")) }
            payload |= rest << 6
        }
        let keyIsInt = first & 1 == 1
        if !keyIsInt && payload == 0 {
            return KeyedEntry(
                isEnd: true, keyIsInt: false, keyPayload: 0, keyStart: p, valueStart: p, valueEnd: p,
                isNil: true, next: p)
        }
        let keyStart = p
        if !keyIsInt {
            let count = payload - 1
            guard count <= UInt64(limit - p) else { throw truncated(count, available: limit - p) }
            p += Int(count)
        }
        let header = try varint(at: &p, limit: limit)
        let valueStart = p
        if header != 0 {
            let count = header - 1
            guard count <= UInt64(limit - p) else { throw truncated(count, available: limit - p) }
            p += Int(count)
        }
        return KeyedEntry(
            isEnd: false, keyIsInt: keyIsInt, keyPayload: payload, keyStart: keyStart, valueStart: valueStart,
            valueEnd: p, isNil: header == 0, next: p)
    }

    /// Validates the keyed container at `start` and finds its end.
    func scanKeyed(from start: Int, limit: Int) throws -> KeyedRegion {
        var p = start
        var count = 0
        while true {
            let entry = try parseEntry(at: p, limit: limit)
            if entry.isEnd {
                return KeyedRegion(start: start, stop: p, end: entry.next, count: count)
            }
            count += 1
            guard count <= maximumCollectionCount else { throw fail(.lengthTooLarge(count)) }
            p = entry.next
        }
    }

    private func keyBytes(_ entry: KeyedEntry) -> UnsafeRawBufferPointer {
        UnsafeRawBufferPointer(start: base + entry.keyStart, count: Int(entry.keyPayload - 1))
    }

    private func matches(_ entry: KeyedEntry, _ form: KeyForm) -> Bool {
        if entry.keyIsInt {
            switch form {
            case .int(let zigzagged):
                return entry.keyPayload == zigzagged
            case .string(let string):
                return KeyForm.isDecimal(string.utf8, of: WireWriter.unzigzag(entry.keyPayload))
            }
        }
        let stored = keyBytes(entry)
        switch form {
        case .int(let zigzagged):
            return KeyForm.isDecimal(stored, of: WireWriter.unzigzag(zigzagged))
        case .string(let string):
            let utf8 = string.utf8
            guard utf8.count == stored.count else { return false }
            let equal = utf8.withContiguousStorageIfAvailable { key in
                for offset in 0..<key.count where key[offset] != stored[offset] { return false }
                return true
            }
            return equal ?? utf8.elementsEqual(stored)
        }
    }

    /// Finds the entry for `key`: first where the previous lookup left off, then by scanning.
    func find<K: CodingKey>(_ key: K, in region: KeyedRegion) -> KeyedEntry? {
        guard alive else { return nil }
        let form = KeyForm(key)
        if lookupStart != region.start {
            lookupStart = region.start
            lookupNext = region.start
            lookupLast = -1
        }
        if lookupNext < region.stop, let entry = try? parseEntry(at: lookupNext, limit: region.stop),
            matches(entry, form)
        {
            lookupLast = lookupNext
            lookupNext = entry.next
            return entry
        }
        if lookupLast >= 0, let entry = try? parseEntry(at: lookupLast, limit: region.stop),
            matches(entry, form)
        {
            return entry
        }
        if region.count > 8 { return findIndexed(form, in: region) }
        var p = region.start
        while p < region.stop, let entry = try? parseEntry(at: p, limit: region.stop) {
            if matches(entry, form) {
                lookupLast = p
                lookupNext = entry.next
                return entry
            }
            p = entry.next
        }
        return nil
    }

    private func findIndexed(_ form: KeyForm, in region: KeyedRegion) -> KeyedEntry? {
        if indexStart != region.start {
            index.removeAll(keepingCapacity: true)
            var p = region.start
            while p < region.stop, let entry = try? parseEntry(at: p, limit: region.stop) {
                let text =
                    entry.keyIsInt
                    ? Array(String(WireWriter.unzigzag(entry.keyPayload)).utf8) : Array(keyBytes(entry))
                // The first entry wins, as in a linear scan.
                if index[text] == nil { index[text] = p }
                p = entry.next
            }
            indexStart = region.start
        }
        let text: [UInt8]
        switch form {
        case .int(let zigzagged): text = Array(String(WireWriter.unzigzag(zigzagged)).utf8)
        case .string(let string): text = Array(string.utf8)
        }
        guard let offset = index[text], let entry = try? parseEntry(at: offset, limit: region.stop) else {
            return nil
        }
        lookupLast = offset
        lookupNext = entry.next
        return entry
    }

    func allKeys<K: CodingKey>(in region: KeyedRegion) -> [K] {
        guard alive else { return [] }
        var keys: [K] = []
        keys.reserveCapacity(region.count)
        var p = region.start
        while p < region.stop, let entry = try? parseEntry(at: p, limit: region.stop) {
            if entry.keyIsInt {
                let value = WireWriter.unzigzag(entry.keyPayload)
                if let key = K(intValue: Int(value)) ?? K(stringValue: String(value)) { keys.append(key) }
            } else {
                if let key = K(stringValue: String(decoding: keyBytes(entry), as: UTF8.self)) {
                    keys.append(key)
                }
            }
            p = entry.next
        }
        return keys
    }

    /// Reads the value for `key` with the cursor confined to its entry.
    @inline(__always)
    func decodeEntry<K: CodingKey, T>(
        _ key: K, in region: KeyedRegion, exact: Bool, _ read: (BinaryDecodingCore) throws -> T
    ) throws -> T {
        guard let entry = find(key, in: region) else {
            try checkAlive()
            throw missingKey(key)
        }
        guard !entry.isNil else { throw foundNil(T.self, forKey: key) }
        let savedPos = pos
        let savedLimit = limit
        let savedLookup = (lookupStart, lookupNext, lookupLast)
        pos = entry.valueStart
        limit = entry.valueEnd
        defer {
            pos = savedPos
            limit = savedLimit
            (lookupStart, lookupNext, lookupLast) = savedLookup
        }
        do {
            let value = try read(self)
            if exact && pos != limit {
                throw mismatch(T.self, "\(T.self) (the entry holds \(limit - pos) more byte(s))")
            }
            return value
        } catch {
            throw prefixed(error, with: key)
        }
    }

    /// The cursor state an entry read replaces.
    struct SavedCursor {
        var pos: Int
        var limit: Int
        var lookup: (start: Int, next: Int, last: Int)
    }

    /// Confines the cursor to the value of the entry for `key`, which must hold one.
    func enterEntry<K: CodingKey>(_ key: K, in region: KeyedRegion, _ type: Any.Type) throws
        -> SavedCursor
    {
        guard let entry = find(key, in: region) else { throw missing(key) }
        guard !entry.isNil else { throw foundNil(type, forKey: key) }
        let saved = SavedCursor(pos: pos, limit: limit, lookup: (lookupStart, lookupNext, lookupLast))
        pos = entry.valueStart
        limit = entry.valueEnd
        return saved
    }

    func leaveEntry(_ saved: SavedCursor) {
        pos = saved.pos
        limit = saved.limit
        (lookupStart, lookupNext, lookupLast) = saved.lookup
    }

    @inline(never)
    func entryNotFilled(_ type: Any.Type) -> DecodingError {
        mismatch(type, "\(type) (the entry holds \(limit - pos) more byte(s))")
    }

    @inline(never)
    private func missing<K: CodingKey>(_ key: K) -> any Error {
        do {
            try checkAlive()
        } catch {
            return error
        }
        return missingKey(key)
    }

    /// The entry for `key`, which must exist; nil values are allowed.
    func entry<K: CodingKey>(forKey key: K, in region: KeyedRegion) throws -> KeyedEntry {
        guard let entry = find(key, in: region) else {
            try checkAlive()
            throw missingKey(key)
        }
        return entry
    }
}
