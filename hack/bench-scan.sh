#!/usr/bin/env bash
# Benchmarks nodeagent/scanner against du on the same trees, pair by pair, in one run, and
# prints the figures as markdown (for docs/benchmarks.md, section "Writable-layer scan").
#   1. full scan vs `du -sB1` on a realistic layer of about 300k entries (goal <= 0.5x du);
#   2. Scanner rescan after 1% of the files changed vs `du -sB1` (goal <= 0.1x du);
#   3. peak RSS (VmHWM) scanning a 1M-file layer (goal <= 64 MiB).
# Caches are warm (the trees were just written, and one untimed du runs first); no caches are
# dropped. Every figure is also checked for exact equality with du. Runs as root (whiteouts).
# Env: BENCH_DIR (scratch, default /var/tmp/layerkeeper-bench, removed at the end),
#      ENTRIES (default 300000), BIG_ENTRIES (default 1000000), PAIRS (default 3).
# Takes about 5 minutes on 2 vCPUs, most of it writing the trees.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
cd "${LK_ROOT}"

[[ $(id -u) == 0 ]] || die "run as root (the generated layer has whiteouts, which are device nodes)"
BENCH_DIR="${BENCH_DIR:-/var/tmp/layerkeeper-bench}"
ENTRIES="${ENTRIES:-300000}"
BIG_ENTRIES="${BIG_ENTRIES:-1000000}"
PAIRS="${PAIRS:-3}"
rm -rf "${BENCH_DIR}"
mkdir -p "${BENCH_DIR}"
trap 'rm -rf "${BENCH_DIR}"' EXIT

cmd="${BENCH_DIR}/benchcmd"
go build -o "${cmd}" ./nodeagent/scanner/internal/benchcmd

# field NAME < json: the value of a top-level number or boolean field of benchcmd's output.
field() { grep -o "\"$1\":[^,}]*" | head -n1 | cut -d: -f2; }
now() { date +%s.%N; }
median() { sort -g | awk '{v[NR]=$1} END {print v[int((NR+1)/2)]}'; }
calc() { awk "BEGIN {printf \"%.${2:-3}f\", $1}"; }
# du_time DIR: seconds for one `du -sB1 DIR`; prints the bytes to fd 3.
du_time() {
  local t0 t1 out
  t0=$(now); out=$(du -sB1 "$1"); t1=$(now)
  echo "${out%%[[:space:]]*}" >&3
  calc "${t1} - ${t0}"
}
check() { [[ "$1" == "$2" ]] || die "$3: scanner says $1, du says $2"; }

load_before=$(cut -d' ' -f1-3 /proc/loadavg)
log "generating a ${ENTRIES}-entry layer"
tree="${BENCH_DIR}/layer"
gen=$("${cmd}" gen -root "${tree}" -entries "${ENTRIES}" -big -whiteouts)
sync # no writeback of the new tree competes with the timed runs
du -sB1 "${tree}" >/dev/null # warm the caches, untimed
inodes=$(du -s --inodes "${tree}" | cut -f1)

log "1. full scan vs du, ${PAIRS} interleaved pairs"
du_walls=() scan_walls=() one_walls=()
for _ in $(seq "${PAIRS}"); do
  du_walls+=("$(du_time "${tree}" 3>"${BENCH_DIR}/du.bytes")")
  out=$("${cmd}" scan -root "${tree}" -repeat 1)
  check "$(field bytes <<<"${out}")" "$(cat "${BENCH_DIR}/du.bytes")" "full scan bytes"
  check "$(field inodes <<<"${out}")" "${inodes}" "full scan inodes"
  scan_walls+=("$(field wallMedian <<<"${out}")")
  out=$("${cmd}" scan -root "${tree}" -repeat 1 -workers 1)
  one_walls+=("$(field wallMedian <<<"${out}")")
done
du_full=$(printf '%s\n' "${du_walls[@]}" | median)
scan_full=$(printf '%s\n' "${scan_walls[@]}" | median)
scan_one=$(printf '%s\n' "${one_walls[@]}" | median)
out=$("${cmd}" scan -root "${tree}" -repeat 3)
scan_cpu=$(field cpuPerScan <<<"${out}")
out=$("${cmd}" scan -root "${tree}" -repeat 3 -workers 1)
one_cpu=$(field cpuPerScan <<<"${out}")
du_cpu=$(/usr/bin/time -f '%U %S' du -sB1 "${tree}" 2>&1 >/dev/null | awk '{print $1 + $2}')
out=$("${cmd}" scan -root "${tree}" -repeat 3 -cpu 0.25)
lim_wall=$(field wallMedian <<<"${out}")
lim_cpu=$(field cpuPerScan <<<"${out}")

log "2. rescan after 1% of the files changed (3 rounds) vs du"
out=$("${cmd}" rescan -root "${tree}" -rounds 3 -fraction 0.01 -window 5s)
rescan=$(field wallMedian <<<"${out}")
rescan_first=$(field firstFullWall <<<"${out}")
carried=$(field carriedEntries <<<"${out}")
du_walls=()
for _ in 1 2 3; do du_walls+=("$(du_time "${tree}" 3>"${BENCH_DIR}/du.bytes")"); done
du_after=$(printf '%s\n' "${du_walls[@]}" | median)
check "$(field bytes <<<"${out}")" "$(cat "${BENCH_DIR}/du.bytes")" "rescan bytes"
check "$(field inodes <<<"${out}")" "$(du -s --inodes "${tree}" | cut -f1)" "rescan inodes"

log "3. peak RSS on a ${BIG_ENTRIES}-file layer"
big="${BENCH_DIR}/big"
"${cmd}" gen -root "${big}" -entries "${BIG_ENTRIES}" -empty >/dev/null
sync
du_big_walls=()
du_big_walls+=("$(du_time "${big}" 3>"${BENCH_DIR}/du.bytes")")
out=$("${cmd}" scan -root "${big}" -repeat 1)
check "$(field bytes <<<"${out}")" "$(cat "${BENCH_DIR}/du.bytes")" "1M-file scan bytes"
big_inodes=$(field inodes <<<"${out}")
big_rss=$(field vmHWMKiB <<<"${out}")
big_wall=$(field wallMedian <<<"${out}")
out=$("${cmd}" passes -root "${big}" -passes 2)
scanner_rss=$(field vmHWMKiB <<<"${out}")
load_after=$(cut -d' ' -f1-3 /proc/loadavg)

cat <<EOF

$(nproc) vCPUs, kernel $(uname -r), $(go version | awk '{print $3}'), ext4 on $(df --output=source "${BENCH_DIR}" | tail -n1); load average ${load_before} before, ${load_after} after.
Warm page and dentry caches (trees just written, one untimed \`du\` first); wall times are medians
of interleaved runs; every scanner figure below was checked equal to \`du -sB1\` / \`du -s --inodes\`.
Layer: $(grep -o '"files":[0-9]*' <<<"${gen}" | cut -d: -f2) files, $(grep -o '"dirs":[0-9]*' <<<"${gen}" | cut -d: -f2) directories (${inodes} inodes; site-packages-like trees, dated logs, a hashed cache, nested node_modules, hardlinks, symlinks, 200 whiteouts, 4 x 16 MiB files, a 1 TiB sparse file).

| measurement | layerkeeper | du -sB1 | ratio | goal |
| --- | ---: | ---: | ---: | --- |
| full scan, ${inodes} inodes (median of ${PAIRS}) | $(calc "${scan_full}") s | $(calc "${du_full}") s | $(calc "${scan_full}/${du_full}" 2)x | <= 0.5x |
| full scan, 1 worker | $(calc "${scan_one}") s | $(calc "${du_full}") s | $(calc "${scan_one}/${du_full}" 2)x | |
| CPU of a full scan (GOMAXPROCS workers) | $(calc "${scan_cpu}") s | $(calc "${du_cpu}") s | $(calc "${scan_cpu}/${du_cpu}" 2)x | |
| CPU of a full scan, 1 worker | $(calc "${one_cpu}") s | $(calc "${du_cpu}") s | $(calc "${one_cpu}/${du_cpu}" 2)x | |
| full scan with CPULimit 0.25 core | $(calc "${lim_wall}") s wall, $(calc "${lim_cpu}") s CPU ($(calc "${lim_cpu}/${lim_wall}" 2) cores) | | | <= 0.25 core |
| Scanner: first (full) pass | $(calc "${rescan_first}") s | | | |
| Scanner: rescan after 1% of files changed (median of 3; ${carried} entries carried over) | $(calc "${rescan}") s | $(calc "${du_after}") s | $(calc "${rescan}/${du_after}" 2)x | <= 0.1x |
| peak RSS, full scan of ${big_inodes} inodes ($(calc "${big_wall}" 1) s; du $(calc "${du_big_walls[0]}" 1) s) | $(calc "${big_rss}/1024" 1) MiB | | | <= 64 MiB |
| peak RSS, Scanner (per-directory cache) on the same tree, 2 passes | $(calc "${scanner_rss}/1024" 1) MiB | | | |
EOF
