// Stand-ins for the reader's own code, which the DocC samples call without declaring
// (Scripts/check-doc-samples.sh type-checks the samples with this file).
import Multiprocessing

struct Job: Codable, Sendable {
    var id: Int
}

struct Outcome: Codable, Sendable {
    var id: Int
}

func work(_ job: Job) async throws -> Outcome { Outcome(id: job.id) }
func compute(_ index: Int) -> Double { Double(index) }
func save() async throws {}
func download() async throws {}
func httpStatus(of url: String) async throws -> Int { 200 }
func makeThumbnail(of path: String, width: Int) throws -> String { path }
func process(_ item: Int) {}
