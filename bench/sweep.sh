#!/usr/bin/env bash
# The issue's scale benchmark: 10,000 watched endpoints (half c2s, half
# s2s) served by one simulator listener on loopback (internal/xmppsim,
# answering for d00001.sim.example ... by stream to and SNI), swept with
# probe.ProbeAll and recorded with history.RecordAll into a fresh bbolt
# file: a first sweep, unchanged sweeps, then a sweep after 1% of the
# domains were rekeyed and 1% renewed. Prints the wall time of each sweep,
# the peak RSS of the process (VmHWM: simulator and watcher together) and
# the history growth per unchanged observation; exits 1 when a sweep takes
# 60 s or more, peak RSS reaches 300 MB, or history grows by 200 bytes or
# more per unchanged observation.
# Usage: bench/sweep.sh [endpoints]   (default 10000)
# Knobs (environment): XMPPSIM_CONCURRENCY (64), XMPPSIM_CHUNK (2000),
# XMPPSIM_UNCHANGED (3), XMPPSIM_PREPARE (1: issue the certificates in a
# parallel pre-pass, excluded from the sweep times; 0: on first use,
# inside the first sweep).
set -euo pipefail
cd "$(dirname "$0")/.."
export XMPPSIM_SWEEP=${1:-10000}
bin=$(mktemp)
trap 'rm -f "$bin"' EXIT
go test -c -o "$bin" ./internal/xmppsim
# Not under -race; the binary alone, so that its peak RSS is the sweep's.
"$bin" -test.run='^TestSweepScale$' -test.count=1 -test.timeout=30m -test.v | grep -v '^=== RUN\|^--- PASS\|^PASS$'
