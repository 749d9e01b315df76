# shellcheck shell=bash
#
# test/lib_server.sh: throwaway PostgreSQL 15 servers for the demo and the
# benchmarks.  Source it from bash:
#
#   . "$(dirname "$0")/../test/lib_server.sh"
#   unlearn_server_start demo 'unlearn.some_guc = 1'   # extra postgresql.conf lines
#   trap unlearn_server_stop EXIT
#   upsql -c 'CREATE EXTENSION unlearn'
#
# unlearn_server_start NAME [conf lines...]
#   initdb's a fresh cluster in /tmp/unlearn-NAME (UNLEARN_SERVER_ROOT
#   overrides /tmp), after stopping a server left running there and removing
#   the old directory; picks a free port from 55432 up; listens on a unix
#   socket inside the cluster directory only (listen_addresses = '');
#   loads shared_preload_libraries = 'unlearn' (unless UNLEARN_NO_PRELOAD=1,
#   for testing the plumbing before the library is installed); logs to
#   /tmp/unlearn-NAME/server.log.  Exports PGHOST PGPORT PGUSER PGDATABASE.
#   Returns non-zero (after printing the tail of the server log) on failure.
#
# unlearn_server_stop
#   stops the server started last (fast, then immediate), removes its data
#   directory (keeps server.log) unless UNLEARN_KEEP_DATA=1.  Safe to call
#   twice and when nothing was started: meant for `trap ... EXIT`.
#
# upsql ARGS...
#   psql -X -v ON_ERROR_STOP=1 against that server.
#
# As root (initdb and postgres refuse to run as root) the cluster belongs to,
# and the server runs as, the `postgres` OS user; as anyone else it runs as
# that user.  psql connects over the unix socket with trust auth either way.
#
# UNLEARN_SERVER_ENV: NAME=VALUE words (no spaces inside a word) added to the
# environment of initdb, pg_ctl and so of the server processes, not of psql.
# test/sanitize.sh preloads the ASan runtime into the server with it.

if [ -n "${UNLEARN_PG_CONFIG:-}" ]; then :
elif [ -n "${PG_CONFIG:-}" ] && [ -x "$PG_CONFIG" ]; then UNLEARN_PG_CONFIG=$PG_CONFIG
elif command -v pg_config >/dev/null 2>&1; then UNLEARN_PG_CONFIG=$(command -v pg_config)
else UNLEARN_PG_CONFIG=/usr/lib/postgresql/15/bin/pg_config
fi
UNLEARN_PG_BINDIR=${UNLEARN_PG_BINDIR:-$("$UNLEARN_PG_CONFIG" --bindir 2>/dev/null || echo /usr/lib/postgresql/15/bin)}

# State of the server started last (read by callers, e.g. for messages).
# shellcheck disable=SC2034
UNLEARN_SERVER_DIR=
UNLEARN_SERVER_DATA=
UNLEARN_SERVER_LOG=
UNLEARN_SERVER_OS_USER=

_unlearn_log() { echo "lib_server: $*" >&2; }

# Run a command as the OS user that owns the clusters, from a directory that
# user can enter (initdb/pg_ctl complain when the cwd is unreadable, e.g. /root).
# With UNLEARN_SERVER_ENV in its environment.
_unlearn_as_owner() {
	# shellcheck disable=SC2086  # UNLEARN_SERVER_ENV is a list of words
	if [ "$(id -u)" -eq 0 ]; then
		(cd / && runuser -u postgres -- env ${UNLEARN_SERVER_ENV:-} "$@")
	else
		(cd / && env ${UNLEARN_SERVER_ENV:-} "$@")
	fi
}

# Is TCP port $1 in use, or its unix socket lock in /tmp taken?
_unlearn_port_busy() {
	local p=$1
	[ -e "/tmp/.s.PGSQL.$p" ] || [ -e "/tmp/.s.PGSQL.$p.lock" ] ||
		[ -e "/var/run/postgresql/.s.PGSQL.$p" ] && return 0
	if command -v ss >/dev/null 2>&1; then
		[ -n "$(ss -Hltn "sport = :$p" 2>/dev/null)" ] && return 0
		return 1
	fi
	# fallback: try to connect
	(exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null && return 0
	return 1
}

# Port of a server of ours already running (postmaster.pid line 4), so two
# of our clusters (demo and bench at once) never pick the same port.
_unlearn_ports_of_ours() {
	local f
	for f in "${UNLEARN_SERVER_ROOT:-/tmp}"/unlearn-*/data/postmaster.pid; do
		if [ -r "$f" ]; then sed -n 4p "$f" 2>/dev/null; fi
	done
	return 0
}

_unlearn_stop_dir() {
	# Stop whatever server runs on data directory $1 (if any); $2: message.
	local data=$1
	[ -f "$data/postmaster.pid" ] || return 0
	_unlearn_log "${2:-stopping the server in $data}"
	_unlearn_as_owner "$UNLEARN_PG_BINDIR/pg_ctl" -D "$data" -m fast -w -t 30 stop >/dev/null 2>&1 ||
		_unlearn_as_owner "$UNLEARN_PG_BINDIR/pg_ctl" -D "$data" -m immediate -w -t 30 stop >/dev/null 2>&1 ||
		true
	if [ -f "$data/postmaster.pid" ]; then
		local pid
		pid=$(head -1 "$data/postmaster.pid" 2>/dev/null)
		if [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null; then
			_unlearn_log "server pid $pid in $data would not stop"
			return 1
		fi
	fi
	return 0
}

unlearn_server_start() {
	local name=${1:?usage: unlearn_server_start NAME [conf lines...]}
	shift
	case $name in
		*[!A-Za-z0-9_.-]*) _unlearn_log "bad server name '$name'"; return 1 ;;
	esac
	if [ ! -x "$UNLEARN_PG_BINDIR/initdb" ]; then
		_unlearn_log "no initdb in $UNLEARN_PG_BINDIR (is postgresql-15 installed?)"
		return 1
	fi

	local dir="${UNLEARN_SERVER_ROOT:-/tmp}/unlearn-$name"
	local data="$dir/data" log="$dir/server.log"
	local owner
	if [ "$(id -u)" -eq 0 ]; then owner=postgres; else owner=$(id -un); fi

	if [ -d "$dir" ]; then
		_unlearn_stop_dir "$data" "stopping a server left running in $data" || return 1
		rm -rf "$dir" || return 1
	fi
	mkdir -p "$dir" || return 1
	chmod 755 "$dir"
	if [ "$(id -u)" -eq 0 ]; then chown postgres:postgres "$dir" || return 1; fi

	if ! _unlearn_as_owner "$UNLEARN_PG_BINDIR/initdb" -D "$data" -U "$owner" --auth=trust \
		--encoding=UTF8 --locale=C.UTF-8 --no-sync >"$dir/initdb.log" 2>&1; then
		# C.UTF-8 may be missing on odd systems: retry with plain C
		if ! { rm -rf "$data" && _unlearn_as_owner "$UNLEARN_PG_BINDIR/initdb" -D "$data" -U "$owner" \
			--auth=trust --encoding=UTF8 --locale=C --no-sync >"$dir/initdb.log" 2>&1; }; then
			_unlearn_log "initdb failed:"
			tail -n 30 "$dir/initdb.log" >&2
			return 1
		fi
	fi

	# A free port: not listening, not one of our other clusters.
	local port=${UNLEARN_PORT:-} ours
	if [ -z "$port" ]; then
		ours=" $(_unlearn_ports_of_ours | tr '\n' ' ') "
		port=55432
		while _unlearn_port_busy "$port" || [[ $ours == *" $port "* ]]; do
			port=$((port + 1))
			if [ "$port" -gt 55999 ]; then
				_unlearn_log "no free port in 55432..55999"
				return 1
			fi
		done
	fi

	{
		echo
		echo "# ---- unlearn throwaway server ($name) ----"
		echo "port = $port"
		echo "listen_addresses = ''"
		echo "unix_socket_directories = '$dir'"
		if [ "${UNLEARN_NO_PRELOAD:-0}" != 1 ]; then
			echo "shared_preload_libraries = 'unlearn'"
		fi
		echo "max_worker_processes = 16"
		echo "max_connections = 50"
		echo "shared_buffers = 256MB"
		echo "fsync = off"
		echo "synchronous_commit = off"
		echo "full_page_writes = off"
		echo "max_wal_size = 4GB"
		echo "checkpoint_timeout = 30min"
		echo "maintenance_work_mem = 256MB"
		echo "log_min_messages = info"
		echo "log_line_prefix = '%m [%p] %q%a '"
		echo "log_timezone = 'UTC'"
		echo "datestyle = 'iso, ymd'"
		echo "lc_messages = 'C'"
		local line
		for line in "$@"; do echo "$line"; done
	} >>"$data/postgresql.conf"

	: >"$log"
	if [ "$(id -u)" -eq 0 ]; then chown postgres:postgres "$log"; fi

	# shellcheck disable=SC2034
	UNLEARN_SERVER_DIR=$dir
	UNLEARN_SERVER_DATA=$data
	UNLEARN_SERVER_LOG=$log
	# shellcheck disable=SC2034
	UNLEARN_SERVER_OS_USER=$owner

	if ! _unlearn_as_owner "$UNLEARN_PG_BINDIR/pg_ctl" -D "$data" -l "$log" -w -t 120 start >"$dir/pg_ctl.log" 2>&1; then
		_unlearn_log "server '$name' failed to start; pg_ctl said:"
		cat "$dir/pg_ctl.log" >&2
		_unlearn_log "last lines of $log:"
		tail -n 40 "$log" >&2
		_unlearn_stop_dir "$data" >/dev/null 2>&1 || true
		UNLEARN_SERVER_DATA=
		return 1
	fi

	export PGHOST=$dir PGPORT=$port PGUSER=$owner PGDATABASE=postgres
	unset PGSERVICE PGPASSWORD PGOPTIONS PGHOSTADDR
	_unlearn_log "server '$name' up: PGHOST=$PGHOST PGPORT=$PGPORT PGUSER=$PGUSER, log $log"
	return 0
}

unlearn_server_stop() {
	local rc=0
	[ -n "$UNLEARN_SERVER_DATA" ] || return 0
	if [ -f "$UNLEARN_SERVER_DATA/postmaster.pid" ]; then
		_unlearn_stop_dir "$UNLEARN_SERVER_DATA" || rc=1
	fi
	if [ "$rc" -eq 0 ] && [ "${UNLEARN_KEEP_DATA:-0}" != 1 ]; then
		rm -rf "$UNLEARN_SERVER_DATA"
	fi
	UNLEARN_SERVER_DATA=
	return "$rc"
}

# Print the tail of the current server's log (for failure messages).
unlearn_server_log_tail() {
	[ -n "$UNLEARN_SERVER_LOG" ] && [ -r "$UNLEARN_SERVER_LOG" ] || return 0
	echo "---- last ${1:-40} lines of $UNLEARN_SERVER_LOG ----" >&2
	tail -n "${1:-40}" "$UNLEARN_SERVER_LOG" >&2
}

upsql() {
	"$UNLEARN_PG_BINDIR/psql" -X -v ON_ERROR_STOP=1 "$@"
}
