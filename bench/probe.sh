#!/usr/bin/env bash
# Probe performance against a real Prosody on loopback (c2s STARTTLS),
# whole processes, interleaved run by run: `xmppcert probe` beside
# `openssl s_client -starttls xmpp`, and `xmppcert probe --full` beside
# `testssl.sh -p -E -P` (testssl.sh runs once per three runs: it takes
# about ten seconds a run). BenchmarkProbeProsody in cmd/xmppcert starts
# Prosody (internal/testxmpp), times the commands and prints medians and
# ratios; it fails when the plain probe takes more than 4x openssl
# s_client (the median of run-by-run ratios) or --full's median is 2 s or
# more.
# Usage: bench/probe.sh [runs]   (default 11)
set -euo pipefail
cd "$(dirname "$0")/.."
XMPPCERT_BENCH_RUNS=${1:-11} go test -run '^$' -bench '^BenchmarkProbeProsody$' -benchtime 1x -count 1 ./cmd/xmppcert
