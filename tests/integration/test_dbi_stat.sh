#!/bin/sh
# test_dbi_stat.sh — dbi-stat against a live segment (the dbi_shmfixture stand-in
# collector): --once --json validated with python3's json module, text output, live mode
# following a restart and a reload, and the messages and exit codes for no collector (2),
# a stale segment (2), an incompatible layout (3) and permission denied (4).
set -eu

BIN=${DBI_BINARY_DIR:?set DBI_BINARY_DIR to the build directory}
STAT="$BIN/dbi-stat"
FIX="$BIN/tests/dbi_shmfixture"
WORK=$(mktemp -d /dev/shm/dbi-test-stat.XXXXXX)
chmod 755 "$WORK" # the permission test runs dbi-stat as nobody; the segment itself stays 0600
NAME="t$$.stat"
PIDS=""

cleanup() {
	for p in $PIDS; do kill "$p" 2>/dev/null || true; done
	for p in $PIDS; do wait "$p" 2>/dev/null || true; done
	rm -rf "$WORK"
}
trap cleanup EXIT INT TERM

fail() {
	echo "FAIL: $*" >&2
	exit 1
}

# start_fixture NAME [args...]: starts it, waits for its ready file, sets FPID.
start_fixture() {
	n=$1
	shift
	rm -f "$WORK/$n.ready"
	"$FIX" --name "$n" --dir "$WORK" --ready "$WORK/$n.ready" "$@" &
	FPID=$!
	PIDS="$PIDS $FPID"
	i=0
	while [ ! -s "$WORK/$n.ready" ]; do
		i=$((i + 1))
		[ $i -lt 500 ] || fail "fixture $n did not start"
		kill -0 "$FPID" 2>/dev/null || fail "fixture $n exited"
		sleep 0.01
	done
}

# expect_exit CODE PATTERN cmd...: runs cmd, checks its exit status and that stderr matches.
expect_exit() {
	want=$1
	pat=$2
	shift 2
	set +e
	"$@" >"$WORK/out" 2>"$WORK/err"
	got=$?
	set -e
	[ "$got" -eq "$want" ] || fail "$*: exit $got, want $want; stderr: $(cat "$WORK/err")"
	grep -q -- "$pat" "$WORK/err" || fail "$*: stderr lacks '$pat': $(cat "$WORK/err")"
}

echo "--- no collector"
expect_exit 2 "no dbi-collector is running with instance name 'nope$$' (no $WORK/nope$$)" \
	"$STAT" -n "nope$$" --dir "$WORK" --once
expect_exit 2 "no dbi-collector is running" "$STAT" -n "nope$$" --dir "$WORK" --once --json
expect_exit 2 "no dbi-collector is running" "$STAT" -n "nope$$" --dir "$WORK" # live mode too
expect_exit 1 "bad --interval" "$STAT" -n "$NAME" --dir "$WORK" --once --interval soon

echo "--- JSON snapshot"
start_fixture "$NAME"
"$STAT" -n "$NAME" --dir "$WORK" --once --json --interval 500ms >"$WORK/snap.json"
python3 - "$WORK/snap.json" "$NAME" "$FPID" <<'EOF'
import json, sys
doc = json.load(open(sys.argv[1]))
name, pid = sys.argv[2], int(sys.argv[3])
def check(cond, what):
    if not cond:
        sys.exit("JSON check failed: %s\n%s" % (what, json.dumps(doc, indent=1)[:3000]))
check(doc["instance"] == name, "instance")
check(doc["pid"] == pid, "pid")
check(doc["alive"] is True, "alive")
check(doc["state"] == "running", "state")
check(doc["page_mode"] == "normal", "page_mode")
check(doc["collector_version"] == "fixture", "collector_version")
check(doc["heartbeat_age_ms"] < 5000, "heartbeat age")
check(doc["segment_size"] >= 8 << 20 and 0 < doc["segment_used"] < doc["segment_size"], "sizes")
check(doc["generation"] == 0 and doc["regions"] == 13, "generation/regions")
check(0.4 < doc["interval_s"] < 2.0, "interval_s")
check(doc["uptime_s"] > 0, "uptime")
rings = {r["name"]: r for r in doc["rings"]}
check(set(rings) == {"ring:postgresql#0>proc#0", "ring:proc#0>exp:otlphttp/newrelic"}, "ring names")
r = rings["ring:postgresql#0>proc#0"]
check(r["producer"] == "postgresql#0" and r["consumer"] == "proc#0", "producer/consumer")
check(r["capacity"] == 1024 and r["slot_size"] == 48, "capacity")
check(0 <= r["depth"] <= 1024 and 0 <= r["fill_pct"] <= 100, "depth")
check(r["in_total"] - r["out_total"] == r["depth"] or r["depth"] == 1024, "depth = in - out")
check(r["in_per_s"] > 100 and r["out_per_s"] > 100, "ring rates")
b = doc["byte_rings"]
check(len(b) == 1 and b[0]["size"] == 65536 and b[0]["in_per_s"] > 10, "byte ring")
st = doc["stats"]
check(set(st) == {"receivers", "processors", "exporters", "extensions", "threads", "runtime"}, "stats groups")
rcv = st["receivers"][0]
check(rcv["id"] == "receiver:postgresql" and rcv["type"] == "postgresql", "receiver id")
check(rcv["counters"]["points"]["type"] == "counter" and rcv["counters"]["points"]["per_s"] > 100, "counter rate")
check(rcv["counters"]["targets_up"] == {"type": "gauge", "value": 3}, "gauge")
check(st["processors"][0]["counters"]["sent"]["value"] > 0, "processor counters")
check(st["exporters"][0]["id"] == "exporter:otlphttp/newrelic", "exporter")
check(len(st["extensions"]) == 1 and len(st["threads"]) == 1 and len(st["runtime"]) == 1, "groups filled")
th = {t["name"]: t for t in doc["threads"]}
check(set(th) == {"main", "proc#0"}, "threads")
p = th["proc#0"]
check(p["role"] == "processor" and p["cpu"] == 1 and p["heartbeat_age_ms"] is not None, "thread fields")
check(15 < p["busy_pct"] < 60 and 20 < p["cpu_pct"] < 80, "busy/cpu %% (%s, %s)" % (p["busy_pct"], p["cpu_pct"]))
check(p["allocated_bytes"] == 12 << 20, "allocated")
check(th["main"]["cpu"] == -1, "unpinned cpu")
other = {o["name"]: o for o in doc["other_regions"]}
check(other["blob:otlphttp/newrelic"] == {"name": "blob:otlphttp/newrelic", "kind": "blob", "size": 256,
                                          "owner": "otlphttp"}, "blob listed by name and size only")
check("circuit:postgresql" in other, "circuit")
EOF
grep -q -e hunter2 -e FIXTURESECRET "$WORK/snap.json" && fail "a blob's bytes were printed"

# --interval 0: one sample, rates null
"$STAT" -n "$NAME" --dir "$WORK" --once --json --interval 0 >"$WORK/snap0.json"
python3 -c '
import json, sys
d = json.load(open(sys.argv[1]))
assert d["interval_s"] is None, d["interval_s"]
assert all(r["in_per_s"] is None for r in d["rings"])
assert d["stats"]["receivers"][0]["counters"]["points"]["per_s"] is None
' "$WORK/snap0.json" || fail "--interval 0 should give null rates"

echo "--- text snapshot"
"$STAT" -n "$NAME" --dir "$WORK" --once --interval 200ms >"$WORK/snap.txt"
for want in "instance $NAME" "state running" "pages normal" "RINGS" "BYTE RINGS" "RECEIVERS" "PROCESSORS" \
	"EXPORTERS" "EXTENSIONS" "RUNTIME" "THREADS" "ring:postgresql#0>proc#0" "postgresql#0 -> proc#0" \
	"targets_up" "(gauge)" "/s" "blob:otlphttp/newrelic"; do
	grep -qF -- "$want" "$WORK/snap.txt" || fail "text output lacks '$want'"
done
grep -q -e hunter2 -e FIXTURESECRET "$WORK/snap.txt" && fail "a blob's bytes were printed"

echo "--- second collector with the same name refused"
set +e
"$FIX" --name "$NAME" --dir "$WORK" >/dev/null 2>"$WORK/err2"
rc=$?
set -e
[ $rc -ne 0 ] || fail "a second collector with the same name started"
grep -qF "another dbi-collector (pid $FPID) is running with instance name '$NAME' (segment $WORK/$NAME)" \
	"$WORK/err2" || fail "refusal message: $(cat "$WORK/err2")"

echo "--- permission denied"
if [ "$(id -u)" -eq 0 ] && command -v setpriv >/dev/null 2>&1; then
	expect_exit 4 "permission denied" setpriv --reuid=65534 --regid=65534 --clear-groups \
		"$STAT" -n "$NAME" --dir "$WORK" --once
else
	echo "(skipped: needs root and setpriv to act as another user)"
fi

echo "--- live mode follows a reload and a restart"
"$STAT" -n "$NAME" --dir "$WORK" --interval 100ms >"$WORK/live.txt" 2>"$WORK/live.err" </dev/null &
SPID=$!
PIDS="$PIDS $SPID"
sleep 0.4
kill -USR1 "$FPID" # reload: new layout, generation 1
sleep 0.4
OLD=$FPID
kill -9 "$OLD" # crash; the next start replaces the stale segment
wait "$OLD" 2>/dev/null || true
sleep 0.3
start_fixture "$NAME"
NEW=$FPID
sleep 0.5
kill -INT "$SPID"
wait "$SPID" || fail "dbi-stat live mode exited with $?"
grep -q "collector reloaded (generation 0 → 1)" "$WORK/live.txt" || fail "live mode did not report the reload"
grep -q "ring:postgresql#1>proc#0" "$WORK/live.txt" || fail "live mode did not re-read the directory"
grep -q "collector pid $OLD is not running" "$WORK/live.txt" || fail "live mode did not report the crash"
grep -q "collector restarted (pid $OLD → $NEW), reattaching" "$WORK/live.txt" ||
	fail "live mode did not report the restart: $(tail -5 "$WORK/live.txt")"

# a clean stop followed by a start: it waits, then reattaches
"$STAT" -n "$NAME" --dir "$WORK" --interval 100ms --json >"$WORK/live.json" 2>"$WORK/live.err" </dev/null &
SPID=$!
PIDS="$PIDS $SPID"
sleep 0.3
kill "$NEW"
wait "$NEW" || true
sleep 0.3
start_fixture "$NAME"
sleep 0.4
kill -TERM "$SPID"
wait "$SPID" || fail "dbi-stat live JSON mode exited with $?"
grep -q "went away" "$WORK/live.err" || fail "live mode did not say the collector went away"
python3 -c '
import json, sys
lines = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
assert len(lines) >= 4, len(lines)
pids = {d["pid"] for d in lines}
assert len(pids) == 2, pids
assert any("collector restarted" in d.get("notice", "") for d in lines)
' "$WORK/live.json" || fail "live JSON lines"

echo "--- stale segment"
kill -9 "$FPID"
wait "$FPID" 2>/dev/null || true
expect_exit 2 "is a stale segment left by pid $FPID" "$STAT" -n "$NAME" --dir "$WORK" --once --json
[ ! -s "$WORK/out" ] || fail "stale: nothing should be printed on stdout"

echo "--- incompatible segment"
start_fixture "$NAME" --compat 99 # also replaces the stale file
expect_exit 3 "layout version 99" "$STAT" -n "$NAME" --dir "$WORK" --once
grep -q "understands layout version 1" "$WORK/err" || fail "incompatible: our version not named"

echo "PASS"
