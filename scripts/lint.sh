#!/bin/sh
# lint.sh BUILD_DIR — clang-tidy (with the build's compile_commands.json) and cppcheck
# over dbi's own sources; exits non-zero on any finding. Run via `make lint`.
set -eu
BUILD=$(cd "${1:-build}" && pwd)
cd "$(dirname "$0")/.."
SRCS=$(find src tools -name '*.c' | sort)
status=0
echo "lint: clang-tidy on $(echo "$SRCS" | wc -l) files"
# shellcheck disable=SC2086
if ! clang-tidy -p "$BUILD" --quiet --extra-arg=-Wno-unknown-warning-option $SRCS 2>/dev/null; then
	status=1
fi
echo "lint: cppcheck"
# shellcheck disable=SC2086
if ! cppcheck --quiet --error-exitcode=1 --enable=warning,performance,portability --std=c11 \
	--inline-suppr --suppress=missingIncludeSystem -I include -I "$BUILD/generated" \
	-D__GNUC__ -D_GNU_SOURCE $SRCS; then
	status=1
fi
[ $status -eq 0 ] && echo "lint: clean"
exit $status
