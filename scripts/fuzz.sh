#!/usr/bin/env bash
# Runs every cargo-fuzz target (or the ones named) for SECONDS each (default
# 600), FUZZ_JOBS at a time (default 2), niced, then prints per target: run
# time, executions, coverage, corpus size and crashes.
#
#   scripts/fuzz.sh [SECONDS] [TARGET...]
#   FUZZ_SUMMARY_ONLY=1 scripts/fuzz.sh 0 [TARGET...]   # only print the table from the logs
#
# Corpora: fuzz/corpus/T (grows, not committed) plus the committed seeds
# (fuzz/seeds/T) and crash inputs (fuzz/regressions/T). Crashes land in
# fuzz/artifacts/T; copy each to fuzz/regressions/T after fixing it so
# tests/fuzz_corpus_regression.rs keeps replaying it. Logs: fuzz/logs/T.log,
# summary: fuzz/logs/summary.md. Exit 1 if any target crashed.
set -euo pipefail
cd "$(dirname "$0")/../fuzz"
secs="${1:-600}"
[ "$#" -gt 0 ] && shift
export RUSTC_BOOTSTRAP=1 # cargo-fuzz needs nightly flags; the toolchain is stable
if [ "$#" -gt 0 ]; then targets=("$@"); else mapfile -t targets < <(cargo fuzz list); fi
jobs="${FUZZ_JOBS:-2}"
mkdir -p logs
[ -n "${FUZZ_SUMMARY_ONLY:-}" ] || nice -n 10 cargo fuzz build -O

run() {
    local t="$1"
    mkdir -p "corpus/$t" "artifacts/$t"
    local dirs=("corpus/$t")
    [ -d "seeds/$t" ] && dirs+=("seeds/$t")
    [ -d "regressions/$t" ] && dirs+=("regressions/$t")
    local t0=$SECONDS
    touch "logs/$t.start"
    nice -n 19 cargo fuzz run -O "$t" "${dirs[@]}" -- \
        -max_total_time="$secs" -timeout=10 -print_final_stats=1 \
        >"logs/$t.log" 2>&1 || true
    echo "$((SECONDS - t0))" >"logs/$t.secs"
}

for t in "${targets[@]}"; do
    [ -n "${FUZZ_SUMMARY_ONLY:-}" ] && break
    while [ "$(jobs -rp | wc -l)" -ge "$jobs" ]; do wait -n || true; done
    echo "fuzz: $t for ${secs}s" >&2
    run "$t" &
done
wait

crashed=0
{
    echo "| target | run time (s) | executions | exec/s | coverage (cov / ft) | corpus | crashes |"
    echo "|---|---|---|---|---|---|---|"
    for t in "${targets[@]}"; do
        log="logs/$t.log"
        execs=$(grep -oE 'stat::number_of_executed_units: +[0-9]+' "$log" | awk '{print $2}' | tail -1)
        rate=$(grep -oE 'stat::average_exec_per_sec: +[0-9]+' "$log" | awk '{print $2}' | tail -1)
        cov=$(grep -oE 'cov: [0-9]+ ft: [0-9]+ corp: [0-9]+' "$log" | tail -1)
        c=$(echo "$cov" | awk '{print $2 " / " $4}')
        corp=$(echo "$cov" | awk '{print $6}')
        # Only what this run found (older artifacts stay as evidence).
        n=0
        if [ -e "logs/$t.start" ]; then
            n=$(find "artifacts/$t" -type f \( -name 'crash-*' -o -name 'oom-*' -o -name 'timeout-*' \) \
                -newer "logs/$t.start" 2>/dev/null | wc -l)
        fi
        [ "$n" -gt 0 ] && crashed=1
        echo "| $t | $(cat "logs/$t.secs" 2>/dev/null || echo ?) | ${execs:-?} | ${rate:-?} | ${c:-?} | ${corp:-?} | $n |"
    done
} | tee logs/summary.md
exit "$crashed"
