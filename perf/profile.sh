#!/bin/sh
# profile.sh SCENARIO [BUILD_DIR] — record a scenario with `perf record -e cpu-clock -g`
# (hardware counters are not needed) and write perf/out/SCENARIO.svg (flame graph) and
# perf/out/SCENARIO.folded, offline.
#
# Scenarios:
#   pipeline       dbi-loadgen pipeline, flat out, 10 s (rings, batch, nop exporter)
#   pipeline-5m    dbi-loadgen pipeline at 5 M points/s, 10 s
# Other scenarios are added next to the components they exercise.
set -eu
SCEN=${1:?usage: profile.sh SCENARIO [BUILD_DIR]}
HERE=$(cd "$(dirname "$0")" && pwd)
BUILD=$(cd "${2:-$HERE/../build}" && pwd)
OUT="$HERE/out"
mkdir -p "$OUT"
case "$SCEN" in
pipeline) CMD="$BUILD/dbi-loadgen pipeline --duration 10s --rate 0" ;;
pipeline-5m) CMD="$BUILD/dbi-loadgen pipeline --duration 10s --rate 5000000 --batch-size 1024" ;;
*) echo "profile.sh: unknown scenario '$SCEN'" >&2; exit 64 ;;
esac
# shellcheck disable=SC2086
perf record -q -e cpu-clock -F 999 -g -o "$OUT/$SCEN.data" -- $CMD >"$OUT/$SCEN.json"
perf script -i "$OUT/$SCEN.data" 2>/dev/null >"$OUT/$SCEN.script"
"$HERE/flamegraph.py" --folded <"$OUT/$SCEN.script" >"$OUT/$SCEN.folded"
"$HERE/flamegraph.py" --title "dbi: $SCEN" <"$OUT/$SCEN.script" >"$OUT/$SCEN.svg"
rm -f "$OUT/$SCEN.script"
echo "profile: $OUT/$SCEN.svg (result: $(cat "$OUT/$SCEN.json"))"
