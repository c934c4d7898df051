#!/usr/bin/env bash
# The CT follower's throughput and memory: BenchmarkFollow (watcher/ct)
# reads a static-ct-api log on loopback of 20 full tiles (5,120 real
# certificates) and of 160 (40,960), through the follower and the
# matcher, from its first entry. It prints entries per second for each
# (the target is 5,000 per log; printed, not gated: an absolute rate is
# what a loaded machine misses) and the peak of the live heap during the
# rounds, which must not grow with the log: the run fails when the peak
# of the 160-tile log is more than three times the 20-tile one's (memory
# that grew with the log would be eight times as much; the peak is read
# from the live heap at each collection, which moves by a tile or so).
# Usage: bench/ct.sh [benchtime]   (default 5x)
set -euo pipefail
cd "$(dirname "$0")/.."
bt=${1:-5x}
declare -A rate peak
for tiles in 20 160; do
  line=$(XMPPCERT_CT_TILES=$tiles go test -run '^$' -bench '^BenchmarkFollow$' -benchtime "$bt" -count 1 ./watcher/ct | grep '^BenchmarkFollow')
  rate[$tiles]=$(awk '{for (i=1;i<NF;i++) if ($(i+1)=="entries/s") print $i}' <<<"$line")
  peak[$tiles]=$(awk '{for (i=1;i<NF;i++) if ($(i+1)=="peak-live-MiB") print $i}' <<<"$line")
  printf 'CT follower, %d tiles (%d entries): %.0f entries/s, peak live heap %s MiB\n' "$tiles" $((tiles * 256)) "${rate[$tiles]}" "${peak[$tiles]}"
done
ratio=$(awk -v a="${peak[160]}" -v b="${peak[20]}" 'BEGIN {printf "%.2f", a / b}')
echo "peak live heap, 160 tiles / 20 tiles: $ratio (limit 3); target 5000 entries/s per log"
awk -v r="$ratio" 'BEGIN {exit !(r <= 3)}' || { echo "FAIL: the follower's memory grows with the log (load: $(cut -d' ' -f1-3 /proc/loadavg))"; exit 1; }
