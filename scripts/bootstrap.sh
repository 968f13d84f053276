#!/bin/sh
# bootstrap.sh — install every Debian package that dbi's build, tests, benchmarks and
# profiling need. Idempotent: it asks dpkg what is already there and installs only what is
# missing, so running it twice is cheap and safe.
set -eu

# libkrb5-dev: gssapi.h, which libpq-int.h includes (pg_pqbuf.c reads an idle session's buffers through it)
PKGS="build-essential cmake pkg-config git ca-certificates curl openssl procps iproute2
libpq-dev libkrb5-dev libpg-query-dev libjson-c-dev protobuf-compiler liburcu-dev libjemalloc-dev libprotobuf-c-dev protobuf-c-compiler
libcurl4-openssl-dev zlib1g-dev libzstd-dev zstd libpcre2-dev libyaml-dev libmicrohttpd-dev
libnghttp2-dev libnuma-dev libbenchmark-dev libcmocka-dev libssl-dev
postgresql-15 postgresql-client-15 postgresql-contrib
clang clang-tidy clang-format cppcheck libclang-rt-14-dev valgrind linux-perf
prometheus"
# Node.js + npm drive the OpenTelemetry JS SDK interop tests; a machine may already have them
# from another source (NodeSource), whose nodejs package conflicts with Debian's npm.
command -v npm >/dev/null 2>&1 || PKGS="$PKGS nodejs npm"

missing=""
for p in $PKGS; do
	if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
		missing="$missing $p"
	fi
done

if [ -z "$missing" ]; then
	echo "bootstrap: all packages present"
	exit 0
fi

SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"
echo "bootstrap: installing:$missing"
export DEBIAN_FRONTEND=noninteractive
# The Debian prometheus package starts a system service on install; policy-rc.d keeps it
# (and postgresql's default cluster) from starting so tests own every server they use.
if [ ! -e /usr/sbin/policy-rc.d ]; then
	printf '#!/bin/sh\nexit 101\n' | $SUDO tee /usr/sbin/policy-rc.d >/dev/null
	$SUDO chmod +x /usr/sbin/policy-rc.d
	trap '$SUDO rm -f /usr/sbin/policy-rc.d' EXIT
fi
$SUDO apt-get update -qq || true
# shellcheck disable=SC2086
$SUDO apt-get install -y -qq --no-install-recommends $missing
echo "bootstrap: done"
