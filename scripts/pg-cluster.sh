#!/bin/bash
# pg-cluster.sh — throwaway PostgreSQL clusters (15, or DBI_PG_BINDIR's version) for dbi's integration tests and for
# debugging by hand. One cluster lives entirely inside one directory DIR: the data directory
# (DIR/data), the unix socket (DIR/.s.PGSQL.<port>), the server log (DIR/postgresql.log) and a
# small state file (DIR/cluster.env) that the other subcommands read. `stop` removes DIR.
#
# The C harness (tests/support/pgtest.c) and the Python one (tests/support/pgcluster.py) drive
# this script, so the cluster recipe exists once. Run `pg-cluster.sh help` for the usage.
#
# PostgreSQL refuses to run as root: as root the server-side programs (initdb, pg_ctl) run as
# the `postgres` OS user via runuser and DIR is handed to that user; as any other user they run
# directly. Client programs (psql, pgbench, pg_isready) always run as the caller.
set -eu -o pipefail

PROG=pg-cluster
SELF=$(readlink -f "$0")
START_TIMEOUT=${DBI_PG_START_TIMEOUT:-30}
PGTEST_ROOT=${DBI_PGTEST_ROOT:-${TMPDIR:-/tmp}/dbi-pgtest}
MARKER=.dbi-pgcluster

usage()
{
	cat <<'EOF'
usage: pg-cluster.sh COMMAND [ARGS]

  start DIR [options]      initdb + configure + start a cluster in DIR (created if missing; must
                           be empty if it exists); prints shell-evalable `export` lines:
                           PGHOST PGPORT PGDATA PGUSER DBI_PG_LOG DBI_PG_DIR DBI_PG_LISTEN
                           DBI_PG_BINDIR (and PGPASSWORD when --password is given)
      --port N             TCP port (default: a free port picked by the script)
      --listen 'A,B'       listen_addresses (default 127.0.0.1; '' = unix socket only); each
                           address must accept connections after the start (any 127.0.0.x
                           works on Linux without configuring it)
      --ssl CERTDIR        ssl = on with CERTDIR/server.crt, server.key, ca.crt (client CA)
      --set key=value      extra postgresql.conf setting (repeatable; wins over defaults;
                           the value is quoted for you, pass it bare),
                           e.g. --set auto_explain.log_min_duration=0
      --auth METHOD        pg_hba method for local and 127.0.0.0/8 (default trust), e.g.
                           scram-sha-256, md5, password
      --local-auth METHOD  pg_hba method for the unix socket only (default: --auth)
      --password PW        password of the superuser `postgres`
      --hba 'LINE'         pg_hba.conf line placed before the defaults (repeatable), e.g.
                           'hostssl all dbi_cert 127.0.0.0/8 cert'
      --owner PID          the test process owning the cluster: a detached watcher stops and
                           removes the cluster when PID dies, even by SIGKILL
  stop DIR                 stop (fast, then immediate, then SIGKILL) and remove DIR; a missing
                           DIR is not an error
  stop-server DIR          stop the server, keep DIR (for reconnect tests)
  start-server DIR         start the stopped server again (same port)
  restart DIR              stop-server + start-server
  status DIR               exit 0 if the server is running, 3 if not
  env DIR                  print the export lines again
  psql DIR [psql args]     psql -X connected to the cluster (database postgres by default)
  pgbench DIR [--db NAME] [--scale N] [--reinit] [--] [pgbench args]
                           initialise the pgbench tables (pgbench -i -s N) if missing (or
                           always with --reinit), then run pgbench with the args, if any,
                           e.g. pgbench DIR --scale 1 -- -c 4 -T 10
  certs DIR [--cn NAME] [--server-cn NAME] [--san 'DNS:localhost,IP:127.0.0.1'] [--days N]
                           make a CA (ca.crt/ca.key), a server cert signed by it with those
                           SANs (server.crt/server.key) and a client cert whose CN is the role
                           name NAME (client.crt/client.key; default CN dbi)
  sweep [ROOT]             remove stale clusters and temp dirs under ROOT (default
                           $DBI_PGTEST_ROOT or ${TMPDIR:-/tmp}/dbi-pgtest): those whose owner
                           process (.dbi-owner) is gone; without an owner, clusters whose
                           server is not running and which are older than two minutes

environment: DBI_PG_BINDIR (PostgreSQL programs; default /usr/lib/postgresql/15/bin),
DBI_PG_START_TIMEOUT (seconds, default 30), DBI_PGTEST_ROOT (harness temp root).
EOF
}

note()
{
	echo "$PROG: $*" >&2
}

die()
{
	note "$*"
	exit 1
}

is_root()
{
	[ "$(id -u)" -eq 0 ]
}

# Run a server-side PostgreSQL program as the cluster's OS user.
as_pg()
{
	if is_root; then
		runuser -u postgres -- "$@"
	else
		"$@"
	fi
}

find_bindir()
{
	local d
	if [ -n "${DBI_PG_BINDIR:-}" ]; then
		echo "$DBI_PG_BINDIR"
		return
	fi
	if [ -x /usr/lib/postgresql/15/bin/postgres ]; then
		echo /usr/lib/postgresql/15/bin
		return
	fi
	for d in $(printf '%s\n' /usr/lib/postgresql/*/bin | sort -t/ -k5 -n -r); do
		if [ -x "$d/postgres" ]; then
			echo "$d"
			return
		fi
	done
	d=$(command -v postgres || true)
	[ -n "$d" ] || die "no PostgreSQL server found (install postgresql-15 or set DBI_PG_BINDIR)"
	dirname "$(readlink -f "$d")"
}

BINDIR=$(find_bindir)

# Single-quote a value for the shell.
shq()
{
	local s=$1
	printf "'%s'" "${s//\'/\'\\\'\'}"
}

# Single-quote a value for postgresql.conf / SQL.
confq()
{
	local s=$1
	printf "'%s'" "${s//\'/\'\'}"
}

# Is PID alive (zombies count as dead)? With a start time (field 22 of /proc/PID/stat), also
# the same process rather than a later one that reused the PID.
pid_alive()
{
	local pid=$1 start=${2:-} stat
	case $pid in
	'' | *[!0-9]*) return 1 ;;
	esac
	read -r stat 2>/dev/null <"/proc/$pid/stat" || return 1
	stat=${stat##*) }
	# shellcheck disable=SC2086
	set -- $stat
	case $1 in
	Z | X) return 1 ;;
	esac
	[ -z "$start" ] || [ "${20:-}" = "$start" ]
}

pid_starttime()
{
	local stat
	read -r stat 2>/dev/null <"/proc/$1/stat" || return 1
	stat=${stat##*) }
	# shellcheck disable=SC2086
	set -- $stat
	echo "${20}"
}

# PID of the running postmaster of data directory $1, or nothing.
postmaster_pid()
{
	local pidfile=$1/postmaster.pid pid comm
	[ -f "$pidfile" ] || return 0
	pid=$(head -n 1 "$pidfile" 2>/dev/null || true)
	pid_alive "$pid" || return 0
	read -r comm 2>/dev/null <"/proc/$pid/comm" || comm=""
	case $comm in
	postgres | postmaster) echo "$pid" ;;
	esac
}

# Every process whose working directory is inside $1 (postgres backends chdir to PGDATA).
procs_in_dir()
{
	local dir=$1 p
	find /proc/[0-9]*/cwd -maxdepth 0 \( -lname "$dir" -o -lname "$dir/*" -o -lname "$dir (deleted)" \) \
		-print 2>/dev/null | while IFS=/ read -r _ _ p _; do echo "$p"; done
}

# Is TCP port $1 in use on this host, in any state?
port_busy()
{
	local hex files=() f
	hex=$(printf '%04X' "$1")
	for f in /proc/net/tcp /proc/net/tcp6; do
		[ -r "$f" ] && files+=("$f")
	done
	[ ${#files[@]} -gt 0 ] || return 1
	awk -v h=":$hex" 'FNR > 1 && substr($2, length($2) - 4) == h { found = 1 } END { exit !found }' \
		"${files[@]}"
}

# A port that nothing uses now, below the kernel's ephemeral range so outgoing connections do
# not take it. Two callers can still race for one port: start retries on bind failures.
pick_port()
{
	local lo hi range i p
	range=$(cat /proc/sys/net/ipv4/ip_local_port_range 2>/dev/null || echo "32768 60999")
	# shellcheck disable=SC2086
	set -- $range
	if [ "$1" -gt 21000 ]; then
		lo=15000
		hi=$(($1 - 1))
	else
		lo=$(($2 + 1))
		hi=65535
	fi
	for i in $(seq 1 500); do
		p=$((lo + (RANDOM * 32768 + RANDOM) % (hi - lo + 1)))
		if ! port_busy "$p"; then
			echo "$p"
			return 0
		fi
		: "$i"
	done
	die "no free TCP port found in $lo-$hi"
}

# Address to reach a listen_addresses entry from this host.
connect_addr()
{
	case $1 in
	'*' | 0.0.0.0) echo 127.0.0.1 ;;
	'::') echo ::1 ;;
	*) echo "$1" ;;
	esac
}

load_env()
{
	local dir=$1
	[ -f "$dir/cluster.env" ] || die "$dir is not a started pg-cluster.sh cluster (no cluster.env)"
	# shellcheck disable=SC1091
	. "$dir/cluster.env"
}

abs_dir()
{
	[ -n "${1:-}" ] || die "missing DIR (see: pg-cluster.sh help)"
	readlink -m -- "$1"
}

# Give a file we wrote inside the cluster to the cluster's OS user.
give()
{
	if is_root; then
		chown postgres:postgres "$@"
	fi
}

print_log_tail()
{
	local log=$1
	if [ -f "$log" ]; then
		note "---- last lines of $log ----"
		tail -n 40 "$log" >&2 || true
		note "----"
	fi
}

# --- start ------------------------------------------------------------------------------

write_conf()
{
	local data=$1 dir=$2 port=$3 listen=$4 ssl=$5 s key val
	shift 5
	{
		echo "# dbi test harness settings (scripts/pg-cluster.sh); included by postgresql.conf"
		echo "port = $port"
		echo "listen_addresses = $(confq "$listen")"
		echo "unix_socket_directories = $(confq "$dir")"
		echo "max_connections = 200"
		echo "shared_preload_libraries = 'pg_stat_statements,auto_explain'"
		echo "pg_stat_statements.track = all"
		echo "track_io_timing = on"
		echo "track_functions = all"
		echo "auto_explain.log_min_duration = '100ms'"
		echo "auto_explain.log_format = json"
		echo "logging_collector = off"
		echo "log_destination = stderr"
		echo "log_line_prefix = '%m [%p] user=%u db=%d app=%a '"
		echo "lc_messages = 'C'"
		echo "fsync = off"
		echo "synchronous_commit = off"
		echo "full_page_writes = off"
		echo "password_encryption = 'scram-sha-256'" # the default from 14; md5 before
		if [ -n "$ssl" ]; then
			echo "ssl = on"
			echo "ssl_cert_file = 'server.crt'"
			echo "ssl_key_file = 'server.key'"
			echo "ssl_ca_file = 'ca.crt'"
		fi
		for s in "$@"; do
			key=${s%%=*}
			val=${s#*=}
			echo "$key = $(confq "$val")"
		done
	} >"$data/dbi.conf"
	give "$data/dbi.conf"
}

write_hba()
{
	local data=$1 auth=$2 local_auth=$3 l
	shift 3
	{
		echo "# dbi test harness pg_hba.conf (scripts/pg-cluster.sh)"
		for l in "$@"; do
			echo "$l"
		done
		echo "local all all $local_auth"
		echo "host all all 127.0.0.0/8 $auth"
		echo "host all all ::1/128 $auth"
		echo "local replication all $local_auth"
		echo "host replication all 127.0.0.0/8 $auth"
		echo "host replication all ::1/128 $auth"
	} >"$data/pg_hba.conf"
	give "$data/pg_hba.conf"
}

# pg_ctl start; returns 0 when up, 2 when the port was taken, 1 on other failures.
server_start()
{
	local dir=$1 data=$1/data log=$1/postgresql.log before out rc=0
	before=0
	[ -f "$log" ] && before=$(stat -c %s "$log")
	out=$(as_pg "$BINDIR/pg_ctl" start -D "$data" -l "$log" -w -t "$START_TIMEOUT" -s 2>&1) || rc=$?
	if [ -f "$log" ] &&
		tail -c +$((before + 1)) "$log" |
		grep -q -E 'could not bind|Address already in use|could not create any TCP/IP sockets'; then
		[ $rc -ne 0 ] || server_stop "$dir" >/dev/null 2>&1 || true
		return 2
	fi
	if [ $rc -ne 0 ]; then
		[ -z "$out" ] || note "$out"
		return 1
	fi
	return 0
}

# Check the socket and every listen address accept connections.
verify_listen()
{
	local dir=$1 port=$2 listen=$3 a addr ok=0 addrs
	"$BINDIR/pg_isready" -q -h "$dir" -p "$port" -U postgres -d postgres -t 10 || {
		note "server does not answer on the unix socket in $dir"
		ok=1
	}
	IFS=, read -r -a addrs <<<"$listen"
	for a in "${addrs[@]}"; do
		a=${a// /}
		[ -n "$a" ] || continue
		addr=$(connect_addr "$a")
		"$BINDIR/pg_isready" -q -h "$addr" -p "$port" -U postgres -d postgres -t 10 || {
			note "server does not answer on $addr:$port"
			ok=1
		}
	done
	return $ok
}

cmd_start()
{
	local dir data port="" listen=127.0.0.1 ssl="" auth=trust local_auth="" password="" owner=""
	local sets=() hbas=() auto_port=0 attempt rc sockpath f a
	dir=$(abs_dir "${1:-}")
	shift
	while [ $# -gt 0 ]; do
		case $1 in
		--port) port=${2:?--port needs a value}; shift 2 ;;
		--listen) listen=${2?--listen needs a value (may be empty: unix socket only)}; shift 2 ;;
		--ssl) ssl=$(readlink -f -- "${2:?--ssl needs CERTDIR}"); shift 2 ;;
		--set)
			case ${2:-} in
			?*=*) sets+=("$2") ;;
			*) die "--set needs key=value" ;;
			esac
			shift 2
			;;
		--auth) auth=${2:?--auth needs a method}; shift 2 ;;
		--local-auth) local_auth=${2:?--local-auth needs a method}; shift 2 ;;
		--password) password=${2?--password needs a value}; shift 2 ;;
		--hba) hbas+=("${2:?--hba needs a line}"); shift 2 ;;
		--owner) owner=${2:?--owner needs a PID}; shift 2 ;;
		*) die "start: unknown option $1" ;;
		esac
	done
	[ -n "$local_auth" ] || local_auth=$auth
	case $local_auth in
	scram-sha-256 | md5 | password)
		# The script itself connects over the socket to set the cluster up.
		[ -n "$password" ] || die "--local-auth/--auth $local_auth needs --password"
		;;
	esac
	data=$dir/data
	case $port in
	'') auto_port=1 ;;
	*[!0-9]*) die "--port must be a number" ;;
	esac

	if [ -e "$dir" ]; then
		[ -d "$dir" ] || die "$dir exists and is not a directory"
		if [ -n "$(ls -A "$dir")" ]; then
			if [ -n "$(postmaster_pid "$data")" ]; then
				die "a cluster is already running in $dir (pg-cluster.sh stop $dir)"
			fi
			die "$dir is not empty"
		fi
	else
		mkdir -p "$dir"
	fi
	cd /

	# The socket path is limited to 107 bytes (sun_path).
	sockpath="$dir/.s.PGSQL.65535.lock"
	[ ${#sockpath} -lt 108 ] || die "$dir is too long for a unix socket path; use a shorter DIR"

	date +%s >"$dir/$MARKER"
	if [ -n "$owner" ]; then
		pid_alive "$owner" || die "--owner $owner is not a running process"
		echo "$owner $(pid_starttime "$owner")" >"$dir/.dbi-owner"
	fi
	if is_root; then
		id postgres >/dev/null 2>&1 || die "running as root needs the postgres OS user"
		chown postgres:postgres "$dir"
		chmod 0755 "$dir"
		if ! runuser -u postgres -- test -x "$dir" -a -w "$dir"; then
			f=$dir
			while [ "$f" != / ]; do
				f=$(dirname "$f")
				runuser -u postgres -- test -x "$f" || die "the postgres user cannot reach $dir:" \
					"$f is not traversable (chmod o+x $f, or use another DIR)"
			done
			die "the postgres user cannot write to $dir"
		fi
	fi

	local pwopt=()
	if [ -n "$password" ]; then
		(umask 077 && printf '%s\n' "$password" >"$dir/.pwfile")
		give "$dir/.pwfile"
		pwopt=(--pwfile="$dir/.pwfile")
		# the superuser's password is hashed at initdb; before 14 the default is md5, which
		# scram-sha-256 authentication cannot use: initdb hashes it as the method needs
		if [ "$auth" = scram-sha-256 ] || [ "$local_auth" = scram-sha-256 ]; then
			pwopt+=(--auth-host=scram-sha-256)
		fi
	fi
	# --no-instructions is PostgreSQL 14+ (the version tests run 12 and 13 too)
	if "$BINDIR/initdb" --help 2>/dev/null | grep -q -- --no-instructions; then
		pwopt+=(--no-instructions)
	fi
	if ! as_pg timeout 120 "$BINDIR/initdb" -D "$data" -U postgres -E UTF8 --no-locale --no-sync \
		--auth-local=trust --auth-host=trust "${pwopt[@]}" >"$dir/initdb.log" 2>&1; then
		rm -f "$dir/.pwfile"
		cat "$dir/initdb.log" >&2
		die "initdb failed in $data"
	fi
	rm -f "$dir/.pwfile"

	if [ -n "$ssl" ]; then
		for f in server.crt server.key ca.crt; do
			[ -r "$ssl/$f" ] || die "--ssl $ssl: missing $f (make them with: pg-cluster.sh certs $ssl)"
			cp "$ssl/$f" "$data/$f"
		done
		chmod 0600 "$data/server.key"
		chmod 0644 "$data/server.crt" "$data/ca.crt"
		give "$data/server.crt" "$data/server.key" "$data/ca.crt"
	fi

	write_hba "$data" "$auth" "$local_auth" ${hbas[@]+"${hbas[@]}"}
	echo "include 'dbi.conf'" >>"$data/postgresql.conf"

	# Readable by the test user too (the server would create it 0600).
	: >"$dir/postgresql.log"
	chmod 0644 "$dir/postgresql.log"
	give "$dir/postgresql.log"

	[ -n "$port" ] || port=$(pick_port)
	attempt=1
	while :; do
		write_conf "$data" "$dir" "$port" "$listen" "$ssl" ${sets[@]+"${sets[@]}"}
		rc=0
		server_start "$dir" || rc=$?
		[ $rc -eq 0 ] && break
		if [ $rc -eq 2 ] && [ $auto_port -eq 1 ] && [ $attempt -lt 8 ]; then
			note "port $port was taken, trying another"
			attempt=$((attempt + 1))
			port=$(pick_port)
			continue
		fi
		print_log_tail "$dir/postgresql.log"
		server_stop "$dir" >/dev/null 2>&1 || true
		die "server in $dir did not start (port $port)"
	done

	if ! verify_listen "$dir" "$port" "$listen"; then
		print_log_tail "$dir/postgresql.log"
		server_stop "$dir" >/dev/null 2>&1 || true
		die "server in $dir is not reachable everywhere it should listen"
	fi

	for a in postgres template1; do
		if ! PGPASSWORD=$password "$BINDIR/psql" -X -q -v ON_ERROR_STOP=1 -h "$dir" -p "$port" \
			-U postgres -d "$a" -c 'CREATE EXTENSION IF NOT EXISTS pg_stat_statements' >&2; then
			print_log_tail "$dir/postgresql.log"
			server_stop "$dir" >/dev/null 2>&1 || true
			die "could not create pg_stat_statements in $a"
		fi
	done

	{
		echo "export PGHOST=$(shq "$dir")"
		echo "export PGPORT=$port"
		echo "export PGDATA=$(shq "$data")"
		echo "export PGUSER=postgres"
		[ -z "$password" ] || echo "export PGPASSWORD=$(shq "$password")"
		echo "export DBI_PG_LOG=$(shq "$dir/postgresql.log")"
		echo "export DBI_PG_DIR=$(shq "$dir")"
		echo "export DBI_PG_LISTEN=$(shq "$listen")"
		echo "export DBI_PG_BINDIR=$(shq "$BINDIR")"
		[ -z "$ssl" ] || echo "export DBI_PG_CERTS=$(shq "$ssl")"
	} >"$dir/cluster.env"
	cat "$dir/cluster.env"

	if [ -n "$owner" ]; then
		setsid "$SELF" _watch "$dir" </dev/null >/dev/null 2>&1 &
		echo $! >"$dir/.dbi-watch.pid"
	fi
}

# --- watcher: stops the cluster when its owner dies (even by SIGKILL) --------------------

cmd_watch()
{
	local dir=$1 owner start
	cd /
	read -r owner start <"$dir/.dbi-owner" || exit 0
	while [ -f "$dir/$MARKER" ] && pid_alive "$owner" "$start"; do
		sleep 1
	done
	[ -f "$dir/$MARKER" ] || exit 0
	rm -f "$dir/.dbi-watch.pid"
	exec "$SELF" stop "$dir"
}

# --- stop -------------------------------------------------------------------------------

# Stop the server of $1 if it runs: fast, then immediate, then SIGKILL; then any straggler.
server_stop()
{
	local dir=$1 data=$1/data pid p i
	pid=$(postmaster_pid "$data")
	if [ -n "$pid" ]; then
		as_pg "$BINDIR/pg_ctl" stop -D "$data" -m fast -w -t 30 -s >&2 ||
			as_pg "$BINDIR/pg_ctl" stop -D "$data" -m immediate -w -t 10 -s >&2 ||
			kill -KILL "$pid" 2>/dev/null || true
		for i in $(seq 1 50); do
			pid_alive "$pid" || break
			sleep 0.1
			: "$i"
		done
	fi
	# Backends left behind by a killed postmaster exit on their own soon; don't wait for it.
	for p in $(procs_in_dir "$data"); do
		kill -KILL "$p" 2>/dev/null || true
	done
	for i in $(seq 1 50); do
		[ -z "$(procs_in_dir "$data")" ] && return 0
		sleep 0.1
		: "$i"
	done
	note "processes still running in $data: $(procs_in_dir "$data" | tr '\n' ' ')"
	return 1
}

cmd_stop()
{
	local dir pid i
	dir=$(abs_dir "${1:-}")
	cd /
	[ -e "$dir" ] || return 0
	[ -d "$dir" ] || die "$dir is not a directory"
	if [ ! -f "$dir/$MARKER" ]; then
		# Not one of ours: only an empty directory (a start that never began) is removed.
		rmdir "$dir" 2>/dev/null || die "refusing to remove $dir: not a pg-cluster.sh directory"
		return 0
	fi
	if [ -f "$dir/.dbi-watch.pid" ]; then
		pid=$(cat "$dir/.dbi-watch.pid" 2>/dev/null || true)
		rm -f "$dir/.dbi-watch.pid"
		if pid_alive "$pid" && grep -q pg-cluster "/proc/$pid/cmdline" 2>/dev/null; then
			kill -TERM "$pid" 2>/dev/null || true
		fi
	fi
	server_stop "$dir" || true
	for i in 1 2 3; do
		rm -rf -- "$dir" 2>/dev/null || true
		[ -e "$dir" ] || return 0
		sleep 0.2
		: "$i"
	done
	die "could not remove $dir"
}

cmd_stop_server()
{
	local dir
	dir=$(abs_dir "${1:-}")
	cd /
	load_env "$dir"
	server_stop "$dir"
}

cmd_start_server()
{
	local dir rc=0
	dir=$(abs_dir "${1:-}")
	cd /
	load_env "$dir"
	if [ -n "$(postmaster_pid "$dir/data")" ]; then
		return 0
	fi
	server_start "$dir" || rc=$?
	if [ $rc -ne 0 ]; then
		print_log_tail "$dir/postgresql.log"
		[ $rc -ne 2 ] || die "port $PGPORT is now taken by something else"
		die "server in $dir did not start"
	fi
	verify_listen "$dir" "$PGPORT" "$DBI_PG_LISTEN" || die "server in $dir is not reachable"
}

cmd_status()
{
	local dir
	dir=$(abs_dir "${1:-}")
	if [ -n "$(postmaster_pid "$dir/data")" ]; then
		echo "running"
		return 0
	fi
	echo "not running"
	return 3
}

cmd_psql()
{
	local dir
	dir=$(abs_dir "${1:-}")
	shift
	load_env "$dir"
	exec "$BINDIR/psql" -X "$@"
}

cmd_pgbench()
{
	local dir db=postgres scale=1 reinit=0 have out
	dir=$(abs_dir "${1:-}")
	shift
	while [ $# -gt 0 ]; do
		case $1 in
		--db) db=${2:?--db needs a name}; shift 2 ;;
		--scale) scale=${2:?--scale needs a number}; shift 2 ;;
		--reinit) reinit=1; shift ;;
		--) shift; break ;;
		*) break ;;
		esac
	done
	load_env "$dir"
	export PGDATABASE=$db
	have=$("$BINDIR/psql" -X -q -A -t -v ON_ERROR_STOP=1 \
		-c "SELECT to_regclass('public.pgbench_accounts') IS NOT NULL")
	if [ "$reinit" -eq 1 ] || [ "$have" != t ]; then
		if ! out=$("$BINDIR/pgbench" -i -q -s "$scale" 2>&1); then
			printf '%s\n' "$out" >&2
			die "pgbench -i -s $scale failed in $db"
		fi
	fi
	[ $# -gt 0 ] || return 0
	exec "$BINDIR/pgbench" "$@"
}

cmd_env()
{
	local dir
	dir=$(abs_dir "${1:-}")
	[ -f "$dir/cluster.env" ] || die "$dir has no cluster.env"
	cat "$dir/cluster.env"
}

# --- certs ------------------------------------------------------------------------------

cmd_certs()
{
	local dir cn=dbi server_cn=localhost san='DNS:localhost,IP:127.0.0.1' days=3650 tmp
	dir=$(abs_dir "${1:-}")
	shift
	while [ $# -gt 0 ]; do
		case $1 in
		--cn) cn=${2:?--cn needs a name}; shift 2 ;;
		--server-cn) server_cn=${2:?--server-cn needs a name}; shift 2 ;;
		--san) san=${2:?--san needs a list}; shift 2 ;;
		--days) days=${2:?--days needs a number}; shift 2 ;;
		*) die "certs: unknown option $1" ;;
		esac
	done
	command -v openssl >/dev/null || die "openssl is not installed"
	mkdir -p "$dir"
	tmp=$(mktemp -d)
	# shellcheck disable=SC2064
	trap "rm -rf '$tmp'" EXIT
	local ec=(-newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes)
	(
		set -e
		umask 077
		openssl req -new -x509 "${ec[@]}" -days "$days" -keyout "$dir/ca.key" -out "$dir/ca.crt" \
			-subj "/CN=dbi test CA" -addext "basicConstraints=critical,CA:TRUE" \
			-addext "keyUsage=critical,keyCertSign,cRLSign"
		printf 'basicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature,keyEncipherment\n%s\n%s\n' \
			"extendedKeyUsage=serverAuth" "subjectAltName=$san" >"$tmp/server.ext"
		openssl req -new "${ec[@]}" -keyout "$dir/server.key" -out "$tmp/server.csr" -subj "/CN=$server_cn"
		openssl x509 -req -in "$tmp/server.csr" -CA "$dir/ca.crt" -CAkey "$dir/ca.key" \
			-CAcreateserial -CAserial "$tmp/ca.srl" -days "$days" -extfile "$tmp/server.ext" \
			-out "$dir/server.crt"
		printf 'basicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature,keyEncipherment\n%s\n' \
			"extendedKeyUsage=clientAuth" >"$tmp/client.ext"
		openssl req -new "${ec[@]}" -keyout "$dir/client.key" -out "$tmp/client.csr" -subj "/CN=$cn"
		openssl x509 -req -in "$tmp/client.csr" -CA "$dir/ca.crt" -CAkey "$dir/ca.key" \
			-CAserial "$tmp/ca.srl" -days "$days" -extfile "$tmp/client.ext" -out "$dir/client.crt"
	) >"$tmp/openssl.log" 2>&1 || {
		cat "$tmp/openssl.log" >&2
		die "openssl failed"
	}
	chmod 0600 "$dir"/*.key
	chmod 0644 "$dir"/*.crt
	echo "export DBI_PG_CERTS=$(shq "$dir")"
	echo "export DBI_PG_CERT_CN=$(shq "$cn")"
}

# --- sweep ------------------------------------------------------------------------------

cmd_sweep()
{
	local root d owner start now age
	root=$(readlink -m -- "${1:-$PGTEST_ROOT}")
	[ -d "$root" ] || return 0
	cd /
	now=$(date +%s)
	for d in "$root"/*/; do
		d=${d%/}
		[ -d "$d" ] || continue
		if [ -f "$d/.dbi-owner" ]; then
			# Made by a test harness: stale exactly when its owner is gone.
			owner="" start=""
			read -r owner start <"$d/.dbi-owner" || true
			pid_alive "$owner" "$start" && continue
			note "sweeping $d (owner $owner is gone)"
			if [ -f "$d/$MARKER" ]; then
				"$SELF" stop "$d" || true
			else
				rm -rf -- "$d" || true
			fi
			continue
		fi
		if [ ! -f "$d/$MARKER" ]; then
			# A temp dir whose start never began (or is beginning right now).
			age=$((now - $(stat -c %Y "$d" 2>/dev/null || echo "$now")))
			[ $age -lt 600 ] || rmdir "$d" 2>/dev/null || true
			continue
		fi
		# Started by hand: leave it while its server runs or while it may still be starting.
		[ -z "$(postmaster_pid "$d/data")" ] || continue
		age=$((now - $(cat "$d/$MARKER" 2>/dev/null || echo 0)))
		[ $age -ge 120 ] || continue
		note "sweeping $d (server not running)"
		"$SELF" stop "$d" || true
	done
}

main()
{
	local cmd=${1:-help}
	[ $# -eq 0 ] || shift
	case $cmd in
	start) cmd_start "$@" ;;
	stop) cmd_stop "$@" ;;
	stop-server) cmd_stop_server "$@" ;;
	start-server) cmd_start_server "$@" ;;
	restart)
		cmd_stop_server "$@"
		cmd_start_server "$@"
		;;
	status) cmd_status "$@" ;;
	env) cmd_env "$@" ;;
	psql) cmd_psql "$@" ;;
	pgbench) cmd_pgbench "$@" ;;
	certs) cmd_certs "$@" ;;
	sweep) cmd_sweep "$@" ;;
	_watch) cmd_watch "$@" ;;
	help | -h | --help) usage ;;
	*)
		usage >&2
		exit 2
		;;
	esac
}

main "$@"
