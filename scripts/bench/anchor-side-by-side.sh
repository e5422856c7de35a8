#!/usr/bin/env bash
# The performance anchor, side by side (docs/benchmarks.md): ours, @bsv/sdk
# 2.1.0 (TypeScript) and bsv-sdk 2.4.0 (Python, libsecp256k1 extension) on the
# same 1,000-transaction BEEF, one after the other, on this machine.
#
#   scripts/bench/anchor-side-by-side.sh            # from the repository root
#
# Environment (all optional):
#   ANCHOR_BENCH_DIR   research folder with bench.mjs, bench.py, chain1000.beef.hex
#                      (default: <repo>/../shared/research/anchor-bench)
#   ESCROWD_ANCHOR_BENCH  the BEEF hex file (default: $ANCHOR_BENCH_DIR/chain1000.beef.hex)
#   ANCHOR_SDK_DIR     scratch folder for node_modules and the Python venv
#                      (default: a new mktemp -d; never inside the repository)
#   RUNS               timed repetitions for the SDK scripts (default 7)
#   ROUNDS             interleaved rounds for our report (default 31)
# Writes everything (SDK JSON, our JSON, the report table) to $ANCHOR_SDK_DIR/results.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
BENCH_DIR=${ANCHOR_BENCH_DIR:-$ROOT/../shared/research/anchor-bench}
export ESCROWD_ANCHOR_BENCH=${ESCROWD_ANCHOR_BENCH:-$BENCH_DIR/chain1000.beef.hex}
WORK=${ANCHOR_SDK_DIR:-$(mktemp -d)}
RUNS=${RUNS:-7}
ROUNDS=${ROUNDS:-31}
OUT=$WORK/results
case "$WORK" in "$ROOT"|"$ROOT"/*) echo "ANCHOR_SDK_DIR must be outside the repository" >&2; exit 1;; esac
for f in bench.mjs bench.py; do
  [ -f "$BENCH_DIR/$f" ] || { echo "missing $BENCH_DIR/$f (set ANCHOR_BENCH_DIR)" >&2; exit 1; }
done
[ -f "$ESCROWD_ANCHOR_BENCH" ] || { echo "missing $ESCROWD_ANCHOR_BENCH" >&2; exit 1; }
mkdir -p "$OUT" "$WORK/ts"
echo "scratch: $WORK"

# SDKs, pinned, into the scratch folder.
if [ ! -f "$WORK/ts/node_modules/@bsv/sdk/package.json" ]; then
  (cd "$WORK/ts" && npm install --no-audit --no-fund @bsv/sdk@2.1.0)
fi
cp "$BENCH_DIR/bench.mjs" "$WORK/ts/"
if [ ! -x "$WORK/py/bin/python" ]; then
  python3 -m venv "$WORK/py" && "$WORK/py/bin/pip" install -q bsv-sdk==2.4.0
fi

report() { (cd "$ROOT" && cargo bench -q -p bsv-format --bench anchor -- --report --rounds "$ROUNDS" "$@"); }
(cd "$ROOT" && cargo bench -q -p bsv-format --bench anchor --no-run)

# Ours alone first, then each SDK, then ours again with the side-by-side table.
report --out "$OUT/rust.before.json" | tee "$OUT/report.before.md"
(cd "$WORK/ts" && node bench.mjs --out "$OUT/ts" --n 1000 --runs "$RUNS") | tee "$OUT/ts.log"
if ! cmp -s <(tr -d '\n' < "$OUT/ts/chain1000.beef.hex") <(tr -d '\n' < "$ESCROWD_ANCHOR_BENCH"); then
  echo "bench.mjs produced a different BEEF than $ESCROWD_ANCHOR_BENCH" >&2; exit 1
fi
"$WORK/py/bin/python" "$BENCH_DIR/bench.py" "$ESCROWD_ANCHOR_BENCH" --runs "$RUNS" --out "$OUT/results.python.json" | tee "$OUT/py.log"
report --ts "$OUT/ts/results.node.json" --py "$OUT/results.python.json" --out "$OUT/rust.json" | tee "$OUT/report.md"
echo "results in $OUT"
