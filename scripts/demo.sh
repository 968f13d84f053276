#!/bin/sh
# demo.sh — the README's run command: install what is missing, build, start a throwaway
# PostgreSQL 15 with a small pgbench workload (or use $POSTGRES_HOST), and run the collector
# in the foreground with config/demo.yaml. Ctrl-C stops everything and removes the cluster.
#
# Environment: POSTGRES_HOST, POSTGRES_PORT (5432), POSTGRES_USER (postgres),
# POSTGRES_PASSWORD — use an existing server instead of a throwaway one.
set -eu
cd "$(dirname "$0")/.."
ROOT=$(pwd)

./scripts/bootstrap.sh
cmake -S . -B build -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build build -j"$(nproc)" --target dbi-collector dbi-stat

DEMO_DIR=""
PGBENCH_PID=""
cleanup() {
	[ -n "$PGBENCH_PID" ] && kill "$PGBENCH_PID" 2>/dev/null || true
	[ -n "$DEMO_DIR" ] && "$ROOT/scripts/pg-cluster.sh" stop "$DEMO_DIR" >/dev/null 2>&1 || true
}
trap cleanup EXIT INT TERM

if [ -z "${POSTGRES_HOST:-}" ]; then
	DEMO_DIR=$(mktemp -d /tmp/dbi-demo.XXXXXX)
	echo "demo: starting a throwaway PostgreSQL 15 in $DEMO_DIR"
	eval "$("$ROOT/scripts/pg-cluster.sh" start "$DEMO_DIR")"
	export POSTGRES_HOST=127.0.0.1 POSTGRES_PORT="$PGPORT" POSTGRES_USER="$PGUSER"
	"$ROOT/scripts/pg-cluster.sh" pgbench "$DEMO_DIR" -i -s 5 >/dev/null 2>&1
	# a small, steady workload: 2 clients, 20 transactions/s, for an hour
	"$ROOT/scripts/pg-cluster.sh" pgbench "$DEMO_DIR" -c 2 -R 20 -T 3600 >/dev/null 2>&1 &
	PGBENCH_PID=$!
fi
export POSTGRES_PORT="${POSTGRES_PORT:-5432}" POSTGRES_USER="${POSTGRES_USER:-postgres}"
export POSTGRES_PASSWORD="${POSTGRES_PASSWORD:-}"

cat <<EOM
demo: collector starting with config/demo.yaml against $POSTGRES_HOST:$POSTGRES_PORT
  - debug output: below (one line per batch; verbosity in config/demo.yaml)
  - metrics:      curl -s http://127.0.0.1:8889/metrics | grep ^db_intelligence_postgresql
  - live view:    build/dbi-stat -n dbi.demo        (another terminal)
  - health:       curl -s http://127.0.0.1:13133/
  - self metrics: curl -s http://127.0.0.1:8888/metrics
  - Ctrl-C stops the collector (it drains first) and removes the throwaway cluster
EOM
build/dbi-collector --config config/demo.yaml
