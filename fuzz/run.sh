#!/usr/bin/env bash
# Runs one fuzz target for a while on the stable toolchain.
#
#   fuzz/run.sh TARGET [SECONDS] [extra libFuzzer flags...]
#
# cargo-fuzz passes -Z flags to rustc, which stable accepts only with
# RUSTC_BOOTSTRAP=1. The sanitizer is off: the crate forbids unsafe code and
# the one C dependency (libsecp256k1) is not instrumented anyway, so ASan
# would only slow the run down (~5x). Debug assertions and overflow checks
# stay on (cargo-fuzz's default). RAYON_NUM_THREADS=1 keeps SPV's parallel
# script checks on one core. The log goes to fuzz/logs/TARGET.log.
set -euo pipefail
cd "$(dirname "$0")"
target=${1:?usage: fuzz/run.sh TARGET [SECONDS] [libFuzzer flags...]}
secs=${2:-300}
shift $(( $# >= 2 ? 2 : 1 ))
mkdir -p logs "corpus/$target"
[ -n "$(ls -A "corpus/$target")" ] || python3 seed_corpus.py >/dev/null
RAYON_NUM_THREADS=1 RUSTC_BOOTSTRAP=1 cargo +stable fuzz run --sanitizer none "$target" -- \
  -max_total_time="$secs" -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 "$@" 2>&1 | tee "logs/$target.log" | grep -E '^(#[0-9]+\s+(INITED|DONE|pulse)|stat::|Done|==.*ERROR|SUMMARY)' || true
