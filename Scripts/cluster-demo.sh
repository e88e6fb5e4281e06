#!/usr/bin/env bash
# Issue 11's demo: the prime count of mp-demo on a producer and two worker processes, started as
# separate programs against a PostgreSQL on loopback; the producer SIGKILLs one worker halfway
# and checks that every block's result arrived exactly once.
#
#   Scripts/cluster-demo.sh [URL]
#
# URL (or MP_POSTGRES_URL) names the database; without one, Scripts/postgres.sh starts a
# throwaway cluster, which is stopped again at the end. Builds mp-cluster-demo in release mode.
set -euo pipefail
cd "$(dirname "$0")/.."

url="${1:-${MP_POSTGRES_URL:-}}"
started_postgres=0
if [ -z "$url" ]; then
  echo "== starting a throwaway PostgreSQL (Scripts/postgres.sh)"
  url=$(Scripts/postgres.sh start)
  started_postgres=1
fi
export MP_POSTGRES_URL="$url"

echo "== building mp-cluster-demo (release)"
swift build -c release --product mp-cluster-demo >/dev/null
bin="$(swift build -c release --show-bin-path)/mp-cluster-demo"

workers=()
finish() {
  status=$?
  if [ ${#workers[@]} -gt 0 ]; then
    # SIGTERM: a graceful shutdown (a killed worker is already gone).
    kill -TERM "${workers[@]}" 2>/dev/null || true
    wait "${workers[@]}" 2>/dev/null || true
  fi
  if [ "$started_postgres" = 1 ]; then Scripts/postgres.sh stop; fi
  exit $status
}
trap finish EXIT INT TERM

echo "== two workers and a producer, on $url"
"$bin" worker A &
workers+=($!)
"$bin" worker B &
workers+=($!)
"$bin" producer --kill "${workers[0]}"
