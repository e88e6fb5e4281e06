// Benchmarks of the manager area (filled in with the area).

let managerCatalogue: [CatalogueEntry] = []

extension PythonBaseline {
    static let managerSnippet = #"""
        """#
}
