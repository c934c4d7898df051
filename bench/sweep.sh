#!/usr/bin/env bash
# The scale benchmark (README, "Watching 10,000 endpoints"): the daemon
# watching 10,000 endpoints (half c2s, half s2s with dialback) served by
# one simulator listener on loopback (internal/xmppsim in a child
# process, answering for d00001.sim.example ... by stream to and SNI), swept with the daemon's
# own SweepOnce (probe, one history commit, classification, alert
# dispatch) into a fresh bbolt history: a first sweep, unchanged sweeps,
# then a sweep after 1% of the domains were rekeyed and 1% renewed. Prints
# the wall time of each sweep, the peak RSS (VmHWM) of the daemon's
# process and of the simulator's, and the history growth per unchanged
# observation; exits 1 when a sweep takes 60 s or more, the daemon's peak
# RSS reaches 300 MB, or history grows by 200 bytes or more per unchanged
# observation.
# Usage: bench/sweep.sh [endpoints]   (default 10000)
# Knobs (environment): XMPPCERT_SWEEP_CONCURRENCY (64),
# XMPPCERT_SWEEP_UNCHANGED (3).
set -euo pipefail
cd "$(dirname "$0")/.."
export XMPPCERT_SWEEP=${1:-10000}
bin=$(mktemp)
trap 'rm -f "$bin"' EXIT
go test -c -o "$bin" ./watcher/daemon
# Not under -race, so that the peak RSS is the daemon's own.
"$bin" -test.run='^TestSweepScale$' -test.count=1 -test.timeout=30m -test.v | grep -v '^=== RUN\|^--- PASS\|^PASS$'
