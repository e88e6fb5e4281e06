#!/usr/bin/env bash
# Usage: Scripts/hang-report.sh SECONDS PATTERN
# A CI guard: if a process whose command line contains PATTERN still runs after SECONDS,
# prints what every process of that tree is doing (thread names and kernel wait channels,
# with stacks when gdb is installed), then kills them, so a hung suite ends with evidence
# instead of at the CI's time limit.
limit=$1
pattern=$2
sleep "$limit"
# Not this script, whose own command line holds the pattern.
pids=$(pgrep -f -- "$pattern" | grep -vx "$$" || true)
[ -z "$pids" ] && exit 0
echo "=== hang report: still running after ${limit} s ==="
for pid in $pids; do
  for task in /proc/"$pid"/task/*; do
    [ -d "$task" ] || continue
    echo "pid $pid tid ${task##*/} $(cat "$task"/comm 2>/dev/null) wchan=$(cat "$task"/wchan 2>/dev/null)"
  done
  if command -v gdb >/dev/null; then
    timeout 60 gdb -p "$pid" -batch -ex "thread apply all bt 20" 2>/dev/null | grep -E '^(#|Thread)' | cut -c1-220
  fi
done
# The suite's own log says which tests had started and not finished.
for pid in $pids; do kill -KILL "$pid" 2>/dev/null || true; done
