#!/usr/bin/env bash
# Type-checks every ```swift sample of the DocC catalogs against the libraries, so that a renamed or
# removed API breaks this check instead of a reader's first try. Each article is checked as a
# module of its own: the declarations its samples make at column 0 (the tasks, functions and
# types, which the library wants at file scope anyway) go to file scope, and every sample's
# statements become the body of a function of their own. `#sourceLocation` points each error at
# the article's line. A sample may be marked, on the line before it:
#   <!-- sample: continues -->  its statements go on from the previous sample's
#   <!-- sample: skip -->        not checked (a Package.swift excerpt)
# Stand-ins for the reader's own code that samples use without declaring (a `Job`,
# `compute(_:)`) are in Scripts/doc-samples-prelude.swift. Needs the library built in debug
# (`swift build`; CI's `swift test` has built it).
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="/opt/swift/usr/bin:$PATH"

catalogs=(Sources/Multiprocessing/Multiprocessing.docc Sources/MultiprocessingPostgres/MultiprocessingPostgres.docc)
build=.build/debug
work=$(mktemp -d)
trap '[ -n "${KEEP_SAMPLES:-}" ] || rm -rf "$work"' EXIT

[ -e "$build/Modules/MultiprocessingPostgres.swiftmodule" ] || swift build --target MultiprocessingPostgres

extract() {
  awk -v file="$PWD/$1" -v name="$(basename "$1" .md | tr -c 'A-Za-z0-9\n' '_')" '
    function location(line) { return sprintf("#sourceLocation(file: \"%s\", line: %d)\n", file, line) }
    function opens(s) { t = s; return gsub(/\{/, "", t) }
    function closes(s) { t = s; return gsub(/\}/, "", t) }
    /^<!-- sample: continues -->/ && !inside { mark = "continues"; next }
    /^<!-- sample: skip -->/ && !inside { mark = "skip"; next }
    /^```swift *$/ && !inside {
      inside = 1; skipping = (mark == "skip"); where = ""
      if (!skipping && (mark != "continues" || n == 0)) {
        n++; bodies = bodies (n > 1 ? "}\n" : "") sprintf("func sample_%s_%d() async throws {\n", name, n)
      }
      mark = ""; next
    }
    /^```/ && inside {
      if (where == "decl") decls = decls "#sourceLocation()\n"
      if (where == "body") bodies = bodies "#sourceLocation()\n"
      inside = 0; skipping = 0; next
    }
    inside && skipping { next }
    inside && /^import / { imports = imports $0 "\n"; next }
    inside {
      starts = (depth == 0 && /^(@[A-Za-z]+ |public |final |private |fileprivate |internal )*(struct|enum|class|extension|protocol|func|actor|typealias) /)
      if (depth > 0 || starts) {
        if (where != "decl") {
          if (where == "body") bodies = bodies "#sourceLocation()\n"
          decls = decls location(NR); where = "decl"
        }
        decls = decls $0 "\n"; depth += opens($0) - closes($0)
      } else {
        if (where != "body") {
          if (where == "decl") decls = decls "#sourceLocation()\n"
          bodies = bodies location(NR); where = "body"
        }
        bodies = bodies $0 "\n"
      }
      next
    }
    !inside && !/^[ \t]*$/ { mark = "" }
    END {
      printf "import Multiprocessing\n%s%s%s", imports, decls, bodies
      if (n > 0) print "}"
    }
  ' "$1"
}

status=0
checked=0
# Every C module the libraries import (the package's own and its dependencies'): the generated
# maps of the build and the checkouts' own.
module_maps=()
while IFS= read -r map; do module_maps+=(-Xcc "-fmodule-map-file=$map"); done < <(
  { find "$build/" -maxdepth 2 -name module.modulemap; find .build/checkouts -path '*/include/module.modulemap'; } | sort)
for catalog in "${catalogs[@]}"; do
  for article in "$catalog"/*.md; do
    grep -q '^```swift' "$article" || continue
    name=$(basename "$article" .md)
    extract "$article" > "$work/$name.swift"
    checked=$((checked + $(grep -c '^```swift' "$article")))
    swiftc -typecheck -parse-as-library -swift-version 6 -suppress-warnings -module-name "Sample$name" \
      -I "$build/Modules" -Xcc -I -Xcc Sources/CMultiprocessing/include "${module_maps[@]}" \
      Scripts/doc-samples-prelude.swift "$work/$name.swift" || status=1
  done
done
if [ "$status" -eq 0 ]; then
  echo "doc samples: all $checked Swift samples type-check"
else
  echo "doc samples: some of the $checked Swift samples do not type-check (above)"
fi
exit "$status"
