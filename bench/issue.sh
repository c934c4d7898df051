#!/usr/bin/env bash
# Issuance performance, two measurements:
#  1. 1,000 local issuances into separate lineages in one process
#     (BenchmarkIssue in acme/localca: lock, key generation, signing with
#     the CA's database write, atomic lineage writes), beside 1,000 of
#     the floor any issuance pays without xmppcert (BenchmarkIssueFloor:
#     a key, a crypto/x509 signature by the same intermediate, three
#     durable files), one after the other, three times. Prints the median
#     total against the 10 s target, and gates on the median of the
#     run-by-run ratios, which a loaded machine cannot fake: exits 1,
#     printing both figures and the load average, when issuance costs 3x
#     the floor or more (about 1.4x on a quiet machine and under two
#     busy loops alike).
#  2. Wall time of whole processes, interleaved run by run so that machine
#     noise hits all alike: `xmppcert --help`, `xmppcert check` of an issued
#     certificate (neither opens the CA), `xmppcert ca root` (reads a file of
#     the CA, does not start it) and `xmppcert issue` into an existing
#     lineage (starts the CA); beside them an empty Go program, the floor
#     of any process; an empty program that imports every package
#     xmppcert's own code imports, the floor its dependencies set; and
#     empty programs that import only what xmppcert imports of one
#     dependency DESIGN.md names (the etcd client, Prometheus' client,
#     step-ca), each dependency's own floor. Prints the median of each, and
#     the package initialisation every xmppcert process pays
#     (GODEBUG=inittrace).
# Usage: bench/issue.sh [runs]   (runs of measurement 2, default 11)
set -euo pipefail
cd "$(dirname "$0")/.."
runs=${1:-11}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

go test -c -o "$work/localca.test" ./acme/localca
pairs=()
for _ in 1 2 3; do
  out=$("$work/localca.test" -test.run='^$' -test.bench='^BenchmarkIssue(Floor)?$' -test.benchtime=1000x)
  issue=$(awk '$1 ~ /^BenchmarkIssue-/ {print $3}' <<<"$out")
  floor=$(awk '$1 ~ /^BenchmarkIssueFloor-/ {print $3}' <<<"$out")
  if [ -z "$issue" ] || [ -z "$floor" ]; then
    echo "$out" >&2
    exit 1
  fi
  pairs+=("$issue" "$floor")
done
python3 - "${pairs[@]}" <<'EOF'
import os, statistics, sys
ns = [float(x) for x in sys.argv[1:]]
issue, floor = ns[0::2], ns[1::2]
total = statistics.median(issue) * 1000 / 1e9
ratio = statistics.median(i / f for i, f in zip(issue, floor))
target, gate = 10, 3
print(f"1000 issuances into separate lineages, one process: median {total:.2f} s of {len(issue)} runs "
      f"({', '.join(f'{i * 1000 / 1e9:.2f}' for i in issue)}); target < {target} s: {'met' if total < target else 'missed'}")
print(f"  the floor beside it (key, signature, durable files): median {statistics.median(floor) * 1000 / 1e9:.2f} s; "
      f"issuance / floor, median of run-by-run ratios: {ratio:.2f} (gate < {gate})")
if ratio >= gate:
    print("issuance costs %.2fx the floor measured beside it (gate %dx); load average (1, 5, 15 min): %.2f %.2f %.2f"
          % ((ratio, gate) + os.getloadavg()), file=sys.stderr)
    sys.exit(1)
EOF

go build -o "$work/xmppcert" ./cmd/xmppcert
printf 'package main\n\nfunc main() {}\n' >"$work/empty.go"
(cd "$work" && GO111MODULE=off go build -o empty empty.go)
# Every package that xmppcert's own code in the binary imports (its
# dependencies and the standard library), blank-imported by an otherwise
# empty program built in a copy of the module: the start-up that linking
# them costs before any code of xmppcert runs. Then the same for the
# packages of one dependency at a time: the etcd client, Prometheus'
# client and step-ca, each of which DESIGN.md names.
mkdir "$work/deps"
cp go.mod go.sum "$work/deps/"
go list -f '{{join .Imports "\n"}}' $(go list -deps ./cmd/xmppcert | grep '^github.com/xmppcert/xmppcert/') |
  grep -v '^github.com/xmppcert/xmppcert' | sort -u >"$work/imports"
# deps NAME PATTERN: a program that blank-imports the packages of
# $work/imports matching the extended regular expression PATTERN.
deps() {
  mkdir "$work/deps/$1"
  {
    printf 'package main\n\nimport (\n'
    grep -E "$2" "$work/imports" | sed 's/.*/\t_ "&"/'
    printf ')\n\nfunc main() {}\n'
  } >"$work/deps/$1/main.go"
  (cd "$work/deps" && go build -o "../$1-only" "./$1")
}
deps all .
deps etcd '^go\.etcd\.io/etcd/'
deps prometheus '^github\.com/prometheus/'
deps step '^(github\.com/smallstep/|go\.step\.sm/)'

x=$work/xmppcert
state=$work/state
"$x" --state-dir "$state" issue example.org --component conference.example.org -q
"$x" --state-dir "$state" ca root >"$work/root.pem"
python3 - "$runs" "$x" "$state" "$work/root.pem" "$work" <<'EOF'
import os, statistics, subprocess, sys, time
runs, x, state, root, work = int(sys.argv[1]), sys.argv[2], sys.argv[3], sys.argv[4], sys.argv[5]
cmds = {
    "empty Go program": [f"{work}/empty"],
    "etcd client only": [f"{work}/etcd-only"],
    "Prometheus only": [f"{work}/prometheus-only"],
    "step-ca only": [f"{work}/step-only"],
    "its imports only": [f"{work}/all-only"],
    "xmppcert --help": [x, "--help"],
    "xmppcert check": [x, "check", "-q", "--domain", "example.org", "--roots", root, f"{state}/live/example.org/fullchain.pem"],
    "xmppcert ca root": [x, "--state-dir", state, "ca", "root"],
    "xmppcert issue": [x, "--state-dir", state, "issue", "example.org", "--component", "conference.example.org", "-q"],
}
times = {name: [] for name in cmds}
for _ in range(runs):
    for name, argv in cmds.items():
        start = time.perf_counter()
        subprocess.run(argv, check=True, stdout=subprocess.DEVNULL)
        times[name].append(time.perf_counter() - start)
inits = []
for _ in range(runs):
    err = subprocess.run([x, "--help"], env={**os.environ, "GODEBUG": "inittrace=1"},
                         stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, check=True).stderr
    inits.append(sum(float(l.split()[4]) for l in err.splitlines() if l.startswith("init ")))
print(f"median wall time of whole processes over {runs} interleaved runs:")
for name, ts in times.items():
    print(f"  {name:18s} {statistics.median(ts)*1000:7.1f} ms   (min {min(ts)*1000:.1f}, max {max(ts)*1000:.1f})")
print(f"  package init, paid by every command: {statistics.median(inits):.1f} ms (GODEBUG=inittrace, median)")
EOF
