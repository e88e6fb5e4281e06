import Testing

@testable import Multiprocessing

/// The wire's shared building blocks (`WireWriter` / `WireReader`), which the codec, the pool's
/// protocol and the queues all write with: what one writes the other reads, the codec agrees,
/// and a reader refuses what is not there.
@Suite("Wire reader and writer")
struct WireHelperTests {
    static let varints: [UInt64] = [0, 1, 127, 128, 300, 16_383, 16_384, 1 << 35, .max - 1, .max]

    @Test("varints, strings, length-prefixed bytes and blobs read back as written")
    func roundTrip() throws {
        var out: [UInt8] = []
        for value in Self.varints { WireWriter.appendVarint(value, to: &out) }
        WireWriter.appendString("héllo", to: &out)
        WireWriter.appendBytes([1, 2, 3], to: &out)
        WireWriter.appendBlob([9, 8], to: &out)
        let start = WireWriter.beginBlob(&out)
        out.append(contentsOf: [7, 7, 7] as [UInt8])
        WireWriter.endBlob(&out, at: start)

        var reader = WireReader(out)
        for value in Self.varints { #expect(try reader.varint() == value) }
        #expect(try reader.string() == "héllo")
        #expect(try reader.data() == [1, 2, 3])
        let blob = try reader.blob()
        #expect(Array(out[blob]) == [9, 8])
        let reserved = try reader.blob()
        #expect(Array(out[reserved]) == [7, 7, 7])
        #expect(reader.isAtEnd)
    }

    @Test("a varint written into raw memory is the one appended to an array, and the codec's")
    func rawVarintMatches() throws {
        for value in Self.varints {
            var appended: [UInt8] = []
            WireWriter.appendVarint(value, to: &appended)
            let written = withUnsafeTemporaryAllocation(byteCount: 10, alignment: 1) { buffer in
                Array(buffer[..<WireWriter.writeVarint(value, into: buffer)])
            }
            #expect(written == appended)
            #expect(written.count == WireWriter.varintSize(value))
            #expect(try BinaryEncoder().encode(value) == appended)
        }
    }

    @Test("a plain array sent through a queue's raw path carries the codec's count")
    func plainArrayPrefixIsTheCodecs() throws {
        let array = [Int](repeating: 5, count: 300)
        var sent: [UInt8] = []
        QueueItemForm.withPlainArrayParts(array) { prefix, memory in
            sent = Array(prefix) + Array(memory)
        }
        #expect(sent == (try BinaryEncoder().encode(array)))
    }

    @Test("reads past the end or beyond the bytes fail with typed errors")
    func truncatedInput() {
        var reader = WireReader([0x80])
        #expect(throws: CodecError.self) { try reader.varint() }
        reader = WireReader([5, 1])
        #expect(throws: CodecError.self) { try reader.data() }
        reader = WireReader([9, 0, 0, 0, 1])
        #expect(throws: CodecError.self) { try reader.blob() }
        reader = WireReader([2, 0xff, 0xfe])
        #expect(throws: CodecError.self) { try reader.string() }
        reader = WireReader([])
        #expect(throws: CodecError.self) { try reader.byte() }
    }
}
