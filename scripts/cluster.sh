#!/usr/bin/env bash
# scripts/cluster.sh up|down|status — a throwaway two-node steep_repl cluster for demos and
# hands-on work: PostgreSQL servers node_a and node_b (the toolchain of .cache/pg18, extension
# preloaded, wal_level = logical) and one `steep-repl run` sidecar per node.
#
# Everything lives in .steep/ (git-ignored):
#   node_a/ node_b/              data directories          node_a.log node_b.log   server logs
#   node_a.port node_b.port      chosen TCP ports          sidecar_node_X.log/.pid  sidecars
#   socket_dir                   unix socket directory (a short /tmp/steep-XXXX path)
#   pg_home                      the PostgreSQL installation used (see below)
#   registrations                conninfo registered per (node, peer), so `up` re-registers on change
#   cluster.env                  NODE_A_URL=... and NODE_B_URL=...
#
# PostgreSQL refuses to run as root: as root, initdb/pg_ctl/postgres run as the `postgres` OS
# user (created if absent). If that user cannot read .cache/pg18, it is copied to .steep/pg.
#
#   up      create (first time), start (if down) and register; idempotent
#   down    stop the sidecars and the servers and delete .steep/ (the cluster is throwaway)
#   status  show what runs; exit 0 when everything runs, 3 otherwise
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
STEEP=$ROOT/.steep
PG_MAJOR=${PG_MAJOR:-18}
PG_SRC=${STEEP_PG_HOME:-$ROOT/.cache/pg$PG_MAJOR}
STEEP_REPL=$ROOT/bin/steep-repl
NODES=(node_a node_b)
SERVER_USER=postgres # the OS user running the servers when this script runs as root

log() { printf 'cluster: %s\n' "$*"; }
die() {
	printf 'cluster: error: %s\n' "$*" >&2
	exit 1
}

is_root() { [[ $(id -u) -eq 0 ]]; }

# as_server CMD ARGS...: run a PostgreSQL binary as the user that owns the data directories.
as_server() {
	if is_root; then
		if command -v runuser >/dev/null 2>&1; then
			(cd / && runuser -u "$SERVER_USER" -- "$@")
		else
			local quoted
			printf -v quoted '%q ' "$@"
			(cd / && su -s /bin/sh "$SERVER_USER" -c "$quoted")
		fi
	else
		"$@"
	fi
}

# server_can PERM PATH: true if the server user passes `test PERM PATH`.
server_can() { as_server test "$1" "$2" 2>/dev/null; }

pg_home() {
	if [[ -f $STEEP/pg_home ]]; then cat "$STEEP/pg_home"; else printf '%s\n' "$PG_SRC"; fi
}
pg_bin() { printf '%s/bin/%s\n' "$(pg_home)" "$1"; }

node_port() { cat "$STEEP/$1.port" 2>/dev/null || true; }
node_url() { printf 'postgres://postgres@127.0.0.1:%s/postgres?sslmode=disable\n' "$(node_port "$1")"; }
node_conninfo() { printf 'host=127.0.0.1 port=%s dbname=postgres user=postgres\n' "$(node_port "$1")"; }
socket_dir() { cat "$STEEP/socket_dir" 2>/dev/null || true; }

server_running() {
	[[ -f $STEEP/$1/PG_VERSION ]] || return 1
	as_server "$(pg_bin pg_ctl)" status -D "$STEEP/$1" >/dev/null 2>&1
}

sidecar_pid() {
	local pidfile=$STEEP/sidecar_$1.pid pid
	[[ -f $pidfile ]] || return 1
	pid=$(cat "$pidfile")
	[[ $pid =~ ^[0-9]+$ ]] || return 1
	kill -0 "$pid" 2>/dev/null || return 1
	grep -qa steep-repl "/proc/$pid/cmdline" 2>/dev/null || return 1
	printf '%s\n' "$pid"
}

port_in_use() {
	local port=$1
	if command -v ss >/dev/null 2>&1; then
		[[ -n $(ss -Htln "sport = :$port" 2>/dev/null) ]] && return 0
	fi
	# Something answers on the port (also catches servers ss cannot see, e.g. in other netns).
	timeout 1 bash -c "exec 3<>/dev/tcp/127.0.0.1/$port" 2>/dev/null
}

# free_port START EXCLUDED...: the first port >= START not in use and not excluded.
free_port() {
	local port=$1 ex
	shift
	for ((; port < 65535; port++)); do
		for ex in "$@"; do [[ $port == "$ex" ]] && continue 2; done
		port_in_use "$port" || {
			printf '%s\n' "$port"
			return 0
		}
	done
	die "no free TCP port from $1 up"
}

# ---------------------------------------------------------------------------------------------
# preparation (root handling, toolchain, socket directory)

check_prereqs() {
	[[ -x $PG_SRC/bin/initdb && -x $PG_SRC/bin/pg_ctl && -x $PG_SRC/bin/postgres ]] ||
		die "no PostgreSQL $PG_MAJOR toolchain in $PG_SRC: run make install-ext (or make cluster)"
	[[ -f $PG_SRC/lib/postgresql/steep_repl.so ]] ||
		die "extension not installed in $PG_SRC: run make install-ext (or make cluster)"
	[[ -x $STEEP_REPL ]] || die "no $STEEP_REPL: run make build (or make cluster)"
}

ensure_server_user() {
	is_root || return 0
	if ! id -u "$SERVER_USER" >/dev/null 2>&1; then
		log "creating the unprivileged OS user '$SERVER_USER' (PostgreSQL refuses to run as root)"
		useradd --system --no-create-home --shell /usr/sbin/nologin "$SERVER_USER"
	fi
}

# The server user must be able to reach .steep/: grant traverse (x) on every ancestor that lacks it.
ensure_traversable() {
	is_root || return 0
	local dir=$STEEP
	local -a ancestors=()
	while [[ $dir != / ]]; do
		dir=$(dirname "$dir")
		ancestors=("$dir" "${ancestors[@]}")
	done
	# Top down: a directory can only be tested once its parent is traversable.
	for dir in "${ancestors[@]}"; do
		server_can -x "$dir" && continue
		if command -v setfacl >/dev/null 2>&1 && setfacl -m "u:$SERVER_USER:x" "$dir" 2>/dev/null; then
			log "granted '$SERVER_USER' traverse permission on $dir (ACL u:$SERVER_USER:x) to reach .steep/"
		else
			chmod o+x "$dir"
			log "made $dir traversable (o+x) so '$SERVER_USER' can reach .steep/"
		fi
	done
}

# What a copy of the installation holds: lib-client is the client programs' libpq (found by rpath).
PG_PARTS=(bin lib share)
[[ ! -d $PG_SRC/lib-client ]] || PG_PARTS+=(lib-client)

# Use .cache/pg18 if the server user can read it, else a world-readable copy in .steep/pg.
choose_pg_home() {
	local home=$PG_SRC
	if is_root && ! { server_can -x "$PG_SRC/bin/postgres" &&
		server_can -r "$PG_SRC/lib/postgresql/steep_repl.so" &&
		server_can -r "$PG_SRC/share/postgresql/extension/steep_repl.control"; } ||
		[[ -n ${STEEP_COPY_PG:-} ]]; then
		home=$STEEP/pg
		log "copying $PG_SRC into $home (readable by '$SERVER_USER')"
		rm -rf "$home"
		mkdir -p "$home"
		cp -a "${PG_PARTS[@]/#/$PG_SRC/}" "$home/"
		chmod -R a+rX "$home"
	fi
	printf '%s\n' "$home" >"$STEEP/pg_home"
}

# Refresh the copy (e.g. after make install-ext) when no server is using it.
refresh_pg_copy() {
	local home
	home=$(pg_home)
	[[ $home == "$STEEP/pg" ]] || return 0
	local n
	for n in "${NODES[@]}"; do server_running "$n" && return 0; done
	cp -a "${PG_PARTS[@]/#/$PG_SRC/}" "$home/"
	chmod -R a+rX "$home"
}

ensure_socket_dir() {
	local dir
	dir=$(socket_dir)
	if [[ -z $dir || ! -d $dir ]]; then
		dir=$(mktemp -d /tmp/steep-XXXX)
		printf '%s\n' "$dir" >"$STEEP/socket_dir"
	fi
	chmod 755 "$dir"
	if is_root; then chown "$SERVER_USER:" "$dir"; fi
}

# ---------------------------------------------------------------------------------------------
# nodes

write_server_conf() {
	local node=$1 dir=$STEEP/$1
	cat >"$dir/steep_cluster.conf" <<EOF
# Written by scripts/cluster.sh: rewritten on every start.
port = $(node_port "$node")
listen_addresses = '127.0.0.1'
unix_socket_directories = '$(socket_dir)'
cluster_name = '$node'
wal_level = logical
max_replication_slots = 20
max_wal_senders = 20
max_worker_processes = 32
max_logical_replication_workers = 16
track_commit_timestamp = on
shared_preload_libraries = 'steep_repl'
log_line_prefix = '%m [%p] %q%a '
EOF
	if is_root; then chown "$SERVER_USER:" "$dir/steep_cluster.conf"; fi
}

# pick_port NODE: keep the recorded port while it is free, else find the next free one.
pick_port() {
	local node=$1 port start others=() n
	port=$(node_port "$node")
	for n in "${NODES[@]}"; do
		[[ $n == "$node" ]] || others+=("$(node_port "$n")")
	done
	if [[ -n $port ]] && ! port_in_use "$port"; then
		return 0
	fi
	case $node in
	node_a) start=5501 ;;
	node_b) start=5502 ;;
	*) start=5510 ;;
	esac
	[[ -n $port ]] && log "port $port of $node is taken now, moving $node to another port"
	port=$(free_port "$start" "${others[@]}")
	printf '%s\n' "$port" >"$STEEP/$node.port"
}

create_node() {
	local node=$1 dir=$STEEP/$1 out
	log "initdb $node in $dir"
	rm -rf "$dir"
	mkdir -p "$dir"
	chmod 700 "$dir"
	if is_root; then chown "$SERVER_USER:" "$dir"; fi
	if ! out=$(as_server "$(pg_bin initdb)" -D "$dir" -U postgres --auth=trust --locale=C -E UTF8 \
		--no-instructions 2>&1); then
		printf '%s\n' "$out" >&2
		die "initdb $node failed"
	fi
	printf "\ninclude_if_exists 'steep_cluster.conf'\n" >>"$dir/postgresql.conf"
	pick_port "$node"
	write_server_conf "$node"
	# CREATE EXTENSION in single-user mode: needs no SQL client (psql may be absent).
	if ! out=$(as_server "$(pg_bin postgres)" --single -D "$dir" -c log_min_messages=warning postgres \
		<<<'CREATE EXTENSION IF NOT EXISTS steep_repl CASCADE;' 2>&1) || grep -qE '(ERROR|FATAL|PANIC):' <<<"$out"; then
		printf '%s\n' "$out" >&2
		die "CREATE EXTENSION steep_repl on $node failed"
	fi
	log "created $node with extension steep_repl"
}

start_node() {
	local node=$1 dir=$STEEP/$1
	pick_port "$node"
	write_server_conf "$node"
	: >>"$STEEP/$node.log"
	if is_root; then chown "$SERVER_USER:" "$STEEP/$node.log"; fi
	if ! as_server "$(pg_bin pg_ctl)" start -w -t 60 -D "$dir" -l "$STEEP/$node.log" >/dev/null; then
		tail -n 20 "$STEEP/$node.log" >&2 || true
		die "could not start $node (log: .steep/$node.log)"
	fi
	log "started $node on port $(node_port "$node")"
}

# register_nodes: every node knows every node (itself with --local); re-registers a node whose
# conninfo changed (its port moved).
register_nodes() {
	local on name conninfo key listed want
	touch "$STEEP/registrations"
	for on in "${NODES[@]}"; do
		listed=$("$STEEP_REPL" node list --db "$(node_url "$on")") ||
			die "cannot list the nodes of $on"
		for name in "${NODES[@]}"; do
			conninfo=$(node_conninfo "$name")
			key="$on $name"
			want="$key $conninfo"
			if grep -qE "^${name}[[:space:]]" <<<"$listed"; then
				grep -qxF "$want" "$STEEP/registrations" && continue
				"$STEEP_REPL" node unregister "$name" --db "$(node_url "$on")" >/dev/null
			fi
			local args=(node register "$name" --conninfo "$conninfo" --db "$(node_url "$on")")
			[[ $on == "$name" ]] && args+=(--local)
			"$STEEP_REPL" "${args[@]}" >/dev/null
			grep -vF "$key " "$STEEP/registrations" >"$STEEP/registrations.new" || true
			printf '%s\n' "$want" >>"$STEEP/registrations.new"
			mv "$STEEP/registrations.new" "$STEEP/registrations"
			if [[ $on == "$name" ]]; then log "registered $name on $on (local)"; else log "registered $name on $on"; fi
		done
	done
}

start_sidecar() {
	local node=$1 pid logf=$STEEP/sidecar_$1.log i
	local -a cmd=("$STEEP_REPL" run --db "$(node_url "$node")")
	# Own session, no terminal, stdio to the log: survives this script and a Ctrl-C in its shell.
	if command -v setsid >/dev/null 2>&1; then cmd=(setsid "${cmd[@]}"); fi
	nohup "${cmd[@]}" </dev/null >>"$logf" 2>&1 &
	pid=$!
	printf '%s\n' "$pid" >"$STEEP/sidecar_$node.pid"
	for ((i = 0; i < 20; i++)); do
		sleep 0.1
		kill -0 "$pid" 2>/dev/null || {
			tail -n 20 "$logf" >&2 || true
			die "the sidecar of $node exited (log: .steep/sidecar_$node.log)"
		}
		grep -q '"sidecar.start"' "$logf" && break
	done
	log "started the sidecar of $node (pid $pid)"
}

write_env() {
	{
		printf 'NODE_A_URL=%s\n' "$(node_url node_a)"
		printf 'NODE_B_URL=%s\n' "$(node_url node_b)"
	} >"$STEEP/cluster.env"
}

# psql_shown: the psql of the server's major (make setup builds it), as the hints spell it.
psql_shown() {
	if [[ -x $PG_SRC/bin/psql ]]; then printf '%s\n' "${PG_SRC#"$ROOT"/}/bin/psql"; else printf 'psql\n'; fi
}

print_info() {
	local node sock
	sock=$(socket_dir)
	printf '\n'
	for node in "${NODES[@]}"; do
		printf '  %s  %s\n' "$node" "$(node_url "$node")"
		printf '          %s -h 127.0.0.1 -p %s -U postgres postgres   (socket: -h %s)\n' \
			"$(psql_shown)" "$(node_port "$node")" "$sock"
		printf '          server log .steep/%s.log, sidecar log .steep/sidecar_%s.log (JSON)\n' "$node" "$node"
	done
	cat <<EOF

  URLs for scripts:  set -a; . .steep/cluster.env; set +a    (NODE_A_URL, NODE_B_URL)
  try:               bin/steep-repl job enqueue sleep --args '{"seconds": 1}' --wait --db "\$NODE_B_URL"
  status / stop:     scripts/cluster.sh status / make cluster-down
EOF
}

cmd_up() {
	check_prereqs
	mkdir -p "$STEEP"
	chmod 755 "$STEEP"
	ensure_server_user
	ensure_traversable
	[[ -f $STEEP/pg_home && -d $(pg_home) ]] || choose_pg_home
	ensure_socket_dir

	local node changed=0
	for node in "${NODES[@]}"; do
		if [[ ! -f $STEEP/$node/PG_VERSION ]]; then
			create_node "$node"
			changed=1
		fi
	done
	for node in "${NODES[@]}"; do
		server_running "$node" && continue
		[[ $changed == 1 ]] || log "$node is down (stale cluster): restarting it"
		refresh_pg_copy
		start_node "$node"
		changed=1
	done
	register_nodes
	for node in "${NODES[@]}"; do
		sidecar_pid "$node" >/dev/null && continue
		start_sidecar "$node"
		changed=1
	done
	write_env
	if [[ $changed == 0 ]]; then
		log "already up: node_a and node_b with a sidecar each"
	else
		log "up: node_a and node_b with a sidecar each"
	fi
	print_info
}

# stop_pid PID WHAT SECONDS: SIGTERM, wait, SIGKILL as a last resort.
stop_pid() {
	local pid=$1 what=$2 secs=$3 i
	kill -TERM "$pid" 2>/dev/null || return 0
	for ((i = 0; i < secs * 10; i++)); do
		kill -0 "$pid" 2>/dev/null || {
			log "stopped $what (pid $pid)"
			return 0
		}
		sleep 0.1
	done
	log "$what (pid $pid) ignored SIGTERM for ${secs}s: killing it"
	kill -KILL "$pid" 2>/dev/null || true
}

cmd_down() {
	if [[ ! -d $STEEP ]]; then
		log "nothing to stop (no .steep/)"
		return 0
	fi
	local node pid port i
	for node in "${NODES[@]}"; do
		# The sidecar gives running jobs a 10 s grace period on SIGTERM.
		if pid=$(sidecar_pid "$node"); then stop_pid "$pid" "the sidecar of $node" 20; fi
		# A sidecar whose pid file got lost: match its exact command line.
		port=$(node_port "$node")
		if [[ -n $port ]]; then
			for pid in $(pgrep -f "steep-repl run --db postgres://postgres@127\.0\.0\.1:$port/postgres" || true); do
				stop_pid "$pid" "the sidecar of $node" 20
			done
		fi
	done
	for node in "${NODES[@]}"; do
		[[ -f $STEEP/$node/PG_VERSION ]] || continue
		if server_running "$node"; then
			as_server "$(pg_bin pg_ctl)" stop -w -t 60 -m fast -D "$STEEP/$node" >/dev/null
			log "stopped $node"
		elif [[ -f $STEEP/$node/postmaster.pid ]]; then
			# pg_ctl unusable (toolchain gone?) but a postmaster may still run.
			pid=$(head -n 1 "$STEEP/$node/postmaster.pid")
			if [[ $pid =~ ^[0-9]+$ ]] && kill -0 "$pid" 2>/dev/null &&
				grep -qa postgres "/proc/$pid/cmdline" 2>/dev/null; then
				kill -INT "$pid"
				for ((i = 0; i < 300; i++)); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
				log "stopped $node (pid $pid)"
			fi
		fi
	done
	local sock
	sock=$(socket_dir)
	if [[ $sock == /tmp/steep-* && -d $sock ]]; then rm -rf "$sock"; fi
	rm -rf "$STEEP"
	log "down: removed .steep/ and the socket directory"
}

cmd_status() {
	if [[ ! -d $STEEP ]]; then
		log "not up (no .steep/): make cluster or scripts/cluster.sh up"
		return 3
	fi
	local node pid all=0
	for node in "${NODES[@]}"; do
		if [[ ! -f $STEEP/$node/PG_VERSION ]]; then
			printf '  %-7s server: not created\n' "$node"
			all=3
		elif server_running "$node"; then
			printf '  %-7s server: running on 127.0.0.1:%s (data .steep/%s)\n' "$node" "$(node_port "$node")" "$node"
		else
			printf '  %-7s server: stopped (port %s)\n' "$node" "$(node_port "$node")"
			all=3
		fi
		if pid=$(sidecar_pid "$node"); then
			printf '  %-7s sidecar: running (pid %s, log .steep/sidecar_%s.log)\n' "$node" "$pid" "$node"
		else
			printf '  %-7s sidecar: not running\n' "$node"
			all=3
		fi
	done
	if [[ $all == 0 ]]; then
		log "up ($(socket_dir) holds the unix sockets; URLs in .steep/cluster.env)"
	else
		log "not fully up: scripts/cluster.sh up restarts what is missing"
	fi
	return "$all"
}

usage() {
	cat <<EOF
usage: scripts/cluster.sh up|down|status
  up      start node_a and node_b (PostgreSQL $PG_MAJOR, steep_repl preloaded) with a sidecar each
  down    stop them and delete .steep/
  status  show what runs (exit 0 when all runs, 3 otherwise)
EOF
}

case ${1:-} in
up) cmd_up ;;
down) cmd_down ;;
status) cmd_status ;;
-h | --help | help) usage ;;
*)
	usage >&2
	exit 2
	;;
esac
