#!/usr/bin/env bash
# BenchmarkCheck beside BenchmarkX509Verify on the same chain, interleaved
# run by run so that machine noise hits both alike. Prints the median ns/op
# of each and the median of the run-by-run ratios; exits 1, with the load
# average, when that ratio exceeds the target (1.3).
# Usage: bench/check-vs-x509.sh [runs]
set -euo pipefail
cd "$(dirname "$0")/.."
runs=${1:-10}
target=1.3
bin=$(mktemp)
trap 'rm -f "$bin"' EXIT
go test -c -o "$bin" ./xmppaddr
for _ in $(seq "$runs"); do
  for b in BenchmarkCheck BenchmarkX509Verify; do
    (cd xmppaddr && "$bin" -test.run='^$' -test.bench="^$b\$" -test.benchtime=2000x) | awk -v b="$b" '$1 ~ "^"b {print b, $3}'
  done
done | python3 -c '
import sys, statistics, os
runs = {"BenchmarkCheck": [], "BenchmarkX509Verify": []}
for line in sys.stdin:
    name, ns = line.split()
    runs[name].append(float(ns))
check, x509 = statistics.median(runs["BenchmarkCheck"]), statistics.median(runs["BenchmarkX509Verify"])
# Each pair ran back to back: the median of the pair ratios is what a
# burst of load on the shared machine shifts least.
ratio = statistics.median(c / x for c, x in zip(runs["BenchmarkCheck"], runs["BenchmarkX509Verify"]))
n = len(runs["BenchmarkCheck"])
print(f"BenchmarkCheck      median {check/1000:8.1f} us/op over {n} runs")
print(f"BenchmarkX509Verify median {x509/1000:8.1f} us/op over {n} runs")
print(f"ratio check/x509 = {ratio:.3f}, median of {n} pairs (target <= '"$target"')")
if ratio > '"$target"':
    print("load average (1, 5, 15 min): %.2f %.2f %.2f" % os.getloadavg())
    sys.exit(1)
'
