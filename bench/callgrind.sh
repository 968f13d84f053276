#!/bin/sh
# callgrind.sh BUILD_DIR [--update] — the instruction-count regression gate.
# Runs each fixed workload of bench/cg_workloads.c under callgrind, counting only the
# measured part (inside dbi_cg_measured), and compares with bench/callgrind-baseline.txt.
# Fails when a workload costs more than TOLERANCE percent (default 3) over its baseline;
# --update rewrites the baseline (commit it with the change that justifies it).
set -eu
BUILD=$(cd "${1:-build}" && pwd)
UPDATE=${2:-}
HERE=$(cd "$(dirname "$0")" && pwd)
BASE="$HERE/callgrind-baseline.txt"
TOL=${TOLERANCE:-3}
BIN="$BUILD/bench/cg_workloads"
[ -x "$BIN" ] || { echo "callgrind: $BIN not built (cmake -DDBI_BENCH=ON)" >&2; exit 1; }
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT
status=0
out="$TMP/new.txt"
for w in ring bring registry attrs; do
	valgrind --tool=callgrind --callgrind-out-file="$TMP/cg.$w" --toggle-collect=dbi_cg_measured \
		--collect-atstart=no "$BIN" "$w" >/dev/null 2>"$TMP/log.$w" ||
		{ cat "$TMP/log.$w" >&2; exit 1; }
	ir=$(grep -E '^summary:|^totals:' "$TMP/cg.$w" | head -1 | awk '{print $2}')
	echo "$w $ir" >>"$out"
	if [ -f "$BASE" ] && [ -z "$UPDATE" ]; then
		old=$(awk -v w="$w" '$1 == w {print $2}' "$BASE")
		if [ -z "$old" ]; then
			echo "callgrind: $w: $ir instructions (no baseline)"
		else
			pct=$(awk -v n="$ir" -v o="$old" 'BEGIN {printf "%.2f", (n - o) * 100 / o}')
			verdict=ok
			if awk -v p="$pct" -v t="$TOL" 'BEGIN {exit !(p > t)}'; then
				verdict="REGRESSION (> +$TOL%)"
				status=1
			fi
			echo "callgrind: $w: $ir instructions, baseline $old ($pct%) $verdict"
		fi
	else
		echo "callgrind: $w: $ir instructions"
	fi
done
if [ -n "$UPDATE" ]; then
	cp "$out" "$BASE"
	echo "callgrind: baseline written to $BASE"
fi
exit $status
