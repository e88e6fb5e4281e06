#if canImport(Glibc)
    import Glibc
#endif

/// A tiny HTTP/1.0 server on 127.0.0.1 for the crawler example: nothing leaves the machine.
enum LoopbackSite {
    /// Pages of a small made-up site: path → (title, links).
    static let pages: [String: (String, [String])] = [
        "/": ("Home", ["/about", "/blog", "/contact"]),
        "/about": ("About us", ["/", "/team"]),
        "/blog": ("Blog", ["/blog/1", "/blog/2", "/blog/3"]),
        "/blog/1": ("Processes in Swift", ["/blog"]),
        "/blog/2": ("Crash isolation", ["/blog"]),
        "/blog/3": ("Pools that never hang", ["/blog", "/missing"]),
        "/team": ("Team", ["/about"]),
        "/contact": ("Contact", ["/"]),
    ]

    /// Starts serving on an ephemeral port in a background thread; returns the port.
    static func start() -> UInt16 {
        let server = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        var yes: Int32 = 1
        setsockopt(server, SOL_SOCKET, SO_REUSEADDR, &yes, 4)
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        address.sin_port = 0
        _ = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                bind(server, $0, socklen_t(MemoryLayout<sockaddr_in>.size))
            }
        }
        listen(server, 64)
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        _ = withUnsafeMutablePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(server, $0, &length) }
        }
        _ = fcntl(server, F_SETFD, FD_CLOEXEC)
        var thread = pthread_t()
        let box = UnsafeMutablePointer<Int32>.allocate(capacity: 1)
        box.pointee = server
        pthread_create(
            &thread, nil,
            { raw in
                let server = raw!.assumingMemoryBound(to: Int32.self).pointee
                while true {
                    let client = accept(server, nil, nil)
                    if client < 0 { continue }
                    LoopbackSite.answer(client)
                    close(client)
                }
            }, box)
        return UInt16(bigEndian: address.sin_port)
    }

    static func answer(_ client: Int32) {
        var buffer = [UInt8](repeating: 0, count: 2048)
        let n = read(client, &buffer, buffer.count)
        guard n > 0 else { return }
        let request = String(decoding: buffer[0..<n], as: UTF8.self)
        let path = request.split(separator: " ").dropFirst().first.map(String.init) ?? "/"
        let response: String
        if let (title, links) = pages[path] {
            let anchors = links.map { "<a href=\"\($0)\">\($0)</a>" }.joined(separator: " ")
            let body = "<html><head><title>\(title)</title></head><body>\(anchors)</body></html>"
            response =
                "HTTP/1.0 200 OK\r\nContent-Type: text/html\r\nContent-Length: \(body.utf8.count)\r\n\r\n\(body)"
        } else {
            response = "HTTP/1.0 404 Not Found\r\nContent-Length: 0\r\n\r\n"
        }
        let bytes = Array(response.utf8)
        _ = bytes.withUnsafeBytes { write(client, $0.baseAddress, $0.count) }
    }

    /// GETs `path` from 127.0.0.1:`port`: the status code and body.
    static func get(port: UInt16, path: String) throws -> (Int, String) {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { throw CrawlError.network("socket") }
        defer { close(fd) }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        address.sin_port = port.bigEndian
        let connected = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size))
            }
        }
        guard connected == 0 else { throw CrawlError.network("connect") }
        let request = Array("GET \(path) HTTP/1.0\r\nHost: localhost\r\n\r\n".utf8)
        _ = request.withUnsafeBytes { write(fd, $0.baseAddress, $0.count) }
        var response: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 4096)
        while true {
            let n = read(fd, &chunk, chunk.count)
            if n <= 0 { break }
            response += chunk[0..<n]
        }
        let text = String(decoding: response, as: UTF8.self)
        let status = Int(text.split(separator: " ").dropFirst().first ?? "") ?? 0
        let body = text.components(separatedBy: "\r\n\r\n").dropFirst().joined()
        return (status, body)
    }
}

enum CrawlError: Error, Codable, CustomStringConvertible {
    case network(String)
    case notFound(String)

    var description: String {
        switch self {
        case .network(let what): "network error: \(what)"
        case .notFound(let path): "404 for \(path)"
        }
    }
}

extension String {
    /// A Foundation-free split on a separator string.
    func components(separatedBy separator: String) -> [String] {
        var parts: [String] = []
        var rest = Substring(self)
        while let range = rest.firstRange(of: separator) {
            parts.append(String(rest[..<range.lowerBound]))
            rest = rest[range.upperBound...]
        }
        parts.append(String(rest))
        return parts
    }
}
