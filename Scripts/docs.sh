#!/usr/bin/env bash
# Builds the DocC catalogs (Sources/Multiprocessing/Multiprocessing.docc and
# Sources/MultiprocessingPostgres/MultiprocessingPostgres.docc) with every DocC warning
# an error — a broken symbol link, an undocumented parameter, a missing article — then
# type-checks the catalog's Swift samples against the library (Scripts/check-doc-samples.sh).
# CI runs it after the tests, reusing their debug build. The archive lands in
# .build/plugins/Swift-DocC/outputs/<target>.doccarchive.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="/opt/swift/usr/bin:$PATH"

swift package generate-documentation --target Multiprocessing --target MultiprocessingPostgres --warnings-as-errors
Scripts/check-doc-samples.sh
