#!/bin/sh
# test.sh — the project's test command: install what is missing, build, run every test.
#
#   scripts/test.sh                 release build in build/, the whole ctest suite
#   scripts/test.sh --asan [-L unit]   ASan+UBSan build in build-asan/ (label filter optional)
#   scripts/test.sh --tsan [-L unit]   TSan build in build-tsan/
#
# Integration tests start their own throwaway PostgreSQL clusters (scripts/pg-cluster.sh)
# and any other servers they need; nothing has to be running beforehand.
set -eu
cd "$(dirname "$0")/.."

BUILD=build
FLAGS="-DCMAKE_BUILD_TYPE=RelWithDebInfo"
LABEL=""
while [ $# -gt 0 ]; do
	case "$1" in
	--asan) BUILD=build-asan; FLAGS="$FLAGS -DDBI_ASAN=ON -DDBI_BENCH=OFF" ;;
	--tsan) BUILD=build-tsan; FLAGS="$FLAGS -DDBI_TSAN=ON -DDBI_BENCH=OFF" ;;
	-L) shift; LABEL="$1" ;;
	*) echo "usage: $0 [--asan|--tsan] [-L label]" >&2; exit 64 ;;
	esac
	shift
done

./scripts/bootstrap.sh
# PostgreSQL 12, 13, 14, 16, 17 servers for the version tests (15 is Debian's; npm registry)
./scripts/pg-versions.sh
# shellcheck disable=SC2086
cmake -S . -B "$BUILD" $FLAGS >/dev/null
cmake --build "$BUILD" -j"$(nproc)"
cd "$BUILD"
if [ -n "$LABEL" ]; then
	ctest --output-on-failure -L "$LABEL"
else
	ctest --output-on-failure
fi
