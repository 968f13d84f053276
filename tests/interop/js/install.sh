#!/bin/sh
# install.sh — install the pinned OpenTelemetry JS SDK for the interop tests, once:
# `npm ci` from the committed package-lock.json, skipped when node_modules already matches
# the lock (npm writes node_modules/.package-lock.json on install). Safe to run
# concurrently from several tests: a lock directory serialises installs.
set -eu
cd "$(dirname "$0")"
command -v npm >/dev/null 2>&1 || { echo "install.sh: npm not found (scripts/bootstrap.sh installs it)" >&2; exit 1; }
lock=.install.lock
i=0
until mkdir "$lock" 2>/dev/null; do
	i=$((i + 1))
	[ $i -gt 600 ] && { echo "install.sh: $lock held for 10 minutes" >&2; exit 1; }
	sleep 1
done
trap 'rmdir "$lock"' EXIT
if [ -f node_modules/.package-lock.json ] && [ ! node_modules/.package-lock.json -ot package-lock.json ] &&
	cmp -s package.json node_modules/.dbi-package.json; then
	exit 0
fi
npm ci --no-audit --no-fund --loglevel=error >&2
cp package.json node_modules/.dbi-package.json
