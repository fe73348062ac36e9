#!/usr/bin/env bash
# scripts/demo.sh — `make demo`: start the two-node cluster (scripts/cluster.sh up) and show the
# spine at work: jobs enqueued in SQL and run by the sidecar, the init state machine refusing an
# illegal transition, the event log, the supervisor background worker and the sidecar's JSON log.
# Non-interactive; the cluster keeps running afterwards (make cluster-down stops it).
#
# Uses psql when present (installing postgresql-client with apt-get when running as root),
# else the same API through bin/steep-repl. DEMO_NO_PSQL=1 forces the steep-repl path.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"
STEEP_REPL=$ROOT/bin/steep-repl
STEP=0

if [[ -t 1 ]]; then
	BOLD=$'\033[1m' DIM=$'\033[2m' RESET=$'\033[0m'
else
	BOLD='' DIM='' RESET=''
fi

heading() {
	STEP=$((STEP + 1))
	printf '\n%s== %d. %s ==%s\n' "$BOLD" "$STEP" "$*" "$RESET"
}
say() { printf '%s\n' "$*"; }
shown() { printf '%s$ %s%s\n' "$DIM" "$*" "$RESET"; }

# ---------------------------------------------------------------------------------------------
heading "Start node_a and node_b, with a sidecar each (scripts/cluster.sh up)"
"$ROOT/scripts/cluster.sh" up
NODE_A_URL=$(sed -n 's/^NODE_A_URL=//p' .steep/cluster.env)
NODE_B_URL=$(sed -n 's/^NODE_B_URL=//p' .steep/cluster.env)

# ---------------------------------------------------------------------------------------------
# A SQL client: psql if present (psql 15+ talks to an 18 server fine for this).
HAVE_PSQL=0
if [[ -z ${DEMO_NO_PSQL:-} ]]; then
	if command -v psql >/dev/null 2>&1; then
		HAVE_PSQL=1
	elif [[ $(id -u) -eq 0 ]] && command -v apt-get >/dev/null 2>&1; then
		say ""
		say "psql is not installed: installing postgresql-client with apt-get (one-off)..."
		export DEBIAN_FRONTEND=noninteractive
		# Try with the current package lists first; refresh them only if that fails.
		apt-get install -y -q postgresql-client >/dev/null 2>&1 ||
			{ apt-get update -q >/dev/null 2>&1 && apt-get install -y -q postgresql-client >/dev/null 2>&1; } || true
		if command -v psql >/dev/null 2>&1; then
			HAVE_PSQL=1
		else
			say "could not install postgresql-client; this demo uses bin/steep-repl instead."
		fi
	else
		say ""
		say "psql is not installed; this demo uses bin/steep-repl instead. To follow along in SQL, install"
		say "the PostgreSQL client: sudo apt-get install postgresql-client (Debian/Ubuntu),"
		say "sudo dnf install postgresql (Fedora/RHEL) or brew install libpq (macOS)."
	fi
fi
if [[ $HAVE_PSQL == 0 ]]; then
	say "(steep-repl fallback: some views below need psql and are shown through the CLI or ps instead)"
fi

PSQL=(psql -X -q -P pager=off -v ON_ERROR_STOP=1 -v SHOW_CONTEXT=never)
# q URL SQL: one statement, unaligned, no headers (for values the script uses).
q() { "${PSQL[@]}" -At -d "$1" -c "$2"; }
# show NODE URL SQL: print the statement like psql's prompt would, then its result.
show() {
	printf '%s%s=# %s%s\n' "$DIM" "$1" "$3" "$RESET"
	"${PSQL[@]}" -d "$2" -c "$3"
}

# ---------------------------------------------------------------------------------------------
heading "Enqueue two jobs on node_b: steep_repl.enqueue_job(kind, args)"
if [[ $HAVE_PSQL == 1 ]]; then
	before=$(q "$NODE_B_URL" "SELECT coalesce(max(id), 0) FROM steep_repl.jobs")
	say "Inside a transaction the new jobs are 'queued' and invisible to the sidecar; COMMIT"
	say "publishes them and fires NOTIFY steep_repl_jobs, which wakes the sidecar at once."
	printf '%s(psql -d "%s")%s\n' "$DIM" "$NODE_B_URL" "$RESET"
	"${PSQL[@]}" -a -d "$NODE_B_URL" <<SQL
BEGIN;
SELECT steep_repl.enqueue_job('sleep', '{"seconds": 2}') AS sleep_job;
SELECT steep_repl.enqueue_job('noop', '{}') AS noop_job;
SELECT id, kind, args, state FROM steep_repl.jobs WHERE id > $before ORDER BY id;
COMMIT;
SQL
else
	before=""
	shown "bin/steep-repl job enqueue sleep --args '{\"seconds\": 2}' --db \$NODE_B_URL"
	"$STEEP_REPL" job enqueue sleep --args '{"seconds": 2}' --db "$NODE_B_URL"
	shown "bin/steep-repl job enqueue noop --db \$NODE_B_URL"
	"$STEEP_REPL" job enqueue noop --db "$NODE_B_URL"
fi

# ---------------------------------------------------------------------------------------------
heading "Watch the sidecar run them: queued -> running -> succeeded"
start=$(date +%s%N)
last=""
for ((i = 0; i < 40; i++)); do
	if [[ $HAVE_PSQL == 1 ]]; then
		table=$("${PSQL[@]}" -d "$NODE_B_URL" -c "
			SELECT id, kind, state, attempt, coalesce(lease_owner, '') AS worker,
			       coalesce(result::text, '') AS result,
			       coalesce(round(extract(epoch FROM finalized_at - created_at)::numeric, 2)::text, '') AS secs
			  FROM steep_repl.jobs WHERE id > $before ORDER BY id")
		pending=$(q "$NODE_B_URL" "SELECT count(*) FROM steep_repl.jobs WHERE id > $before AND state IN ('queued', 'running')")
	else
		table=$("$STEEP_REPL" job list --limit 2 --db "$NODE_B_URL")
		pending=$(grep -cE '[[:space:]](queued|running)[[:space:]]' <<<"$table" || true)
	fi
	if [[ $table != "$last" ]]; then
		elapsed=$((($(date +%s%N) - start) / 1000000))
		printf '%s-- after %d.%01d s%s\n%s\n' "$DIM" $((elapsed / 1000)) $((elapsed % 1000 / 100)) "$RESET" "$table"
		last=$table
	fi
	[[ $pending == 0 ]] && break
	sleep 0.5
done
if [[ $pending != 0 ]]; then
	say "(the jobs are not finished after 20 s: see .steep/sidecar_node_b.log)"
fi

# ---------------------------------------------------------------------------------------------
heading "The init state machine, enforced in the database"
# transition NEWSTATE [REASON]: through SQL or the CLI; returns the command's status.
transition() {
	if [[ $HAVE_PSQL == 1 ]]; then
		local sql="SELECT steep_repl.transition('node_b', '$1'" q="'"
		[[ -n ${2:-} ]] && sql+=", $q$2$q"
		sql+=")"
		printf '%snode_b=# %s;%s\n' "$DIM" "$sql" "$RESET"
		"${PSQL[@]}" -d "$NODE_B_URL" -c "$sql" 2>&1
	else
		local reason=""
		[[ -n ${2:-} ]] && reason=" --reason \"$2\""
		shown "bin/steep-repl node transition node_b $1$reason --db \$NODE_B_URL"
		"$STEEP_REPL" node transition node_b "$1" ${2:+--reason "$2"} --db "$NODE_B_URL" 2>&1
	fi
}
node_b_state() {
	if [[ $HAVE_PSQL == 1 ]]; then
		q "$NODE_B_URL" "SELECT init_state FROM steep_repl.nodes WHERE name = 'node_b'"
	else
		"$STEEP_REPL" node list --db "$NODE_B_URL" | awk '$1 == "node_b" { print tolower($3) }'
	fi
}

# A demo interrupted earlier may have left node_b elsewhere: bring it back first.
state=$(node_b_state)
case $state in
uninitialized) ;;
synchronized) transition reinitializing 'demo: reset' >/dev/null && transition uninitialized 'demo: reset' >/dev/null ;;
*) transition uninitialized 'demo: reset' >/dev/null || true ;;
esac
state=$(node_b_state)
if [[ $state != uninitialized ]]; then
	say "node_b is $state and cannot return to uninitialized by a legal transition: skipping this part."
else
	say "UNINITIALIZED -> PREPARING -> COPYING are legal steps (an init started by hand):"
	transition preparing 'demo: an init by hand'
	transition copying
	say ""
	say "COPYING -> SYNCHRONIZED skips CATCHING_UP: refused, and nothing changes:"
	if transition synchronized; then
		say "(unexpected: the illegal transition was accepted)"
	fi
	say "node_b is still $(node_b_state | tr '[:lower:]' '[:upper:]')."
	say ""
	say "Cancelling (any active state -> UNINITIALIZED) is legal and puts node_b back:"
	transition uninitialized 'demo: cancelled'
	if [[ $HAVE_PSQL == 1 ]]; then
		show node_b "$NODE_B_URL" "SELECT name, is_local, init_state, state_changed_at::timestamp(0) FROM steep_repl.nodes ORDER BY name;"
	else
		shown "bin/steep-repl node list --db \$NODE_B_URL"
		"$STEEP_REPL" node list --db "$NODE_B_URL"
	fi
fi

# ---------------------------------------------------------------------------------------------
heading "Every transition is an event (steep_repl.events, append-only, NOTIFY steep_repl_events)"
if [[ $HAVE_PSQL == 1 ]]; then
	show node_b "$NODE_B_URL" "SELECT * FROM (SELECT id, to_char(at, 'HH24:MI:SS.MS') AS at, node, event, from_state, to_state, detail FROM steep_repl.events ORDER BY id DESC LIMIT 10) e ORDER BY id;"
else
	say "(the event table needs a SQL client: with psql, SELECT * FROM steep_repl.events ORDER BY id;)"
fi

# ---------------------------------------------------------------------------------------------
heading "The supervisor background worker runs steep_repl.tick() on each node"
if [[ $HAVE_PSQL == 1 ]]; then
	for node in node_a node_b; do
		url=$NODE_A_URL
		[[ $node == node_b ]] && url=$NODE_B_URL
		show "$node" "$url" "SELECT pid, backend_type, datname, backend_start::timestamp(0), current_setting('steep_repl.naptime') AS naptime FROM pg_stat_activity WHERE backend_type = 'steep_repl supervisor';"
	done
else
	# cluster.sh sets cluster_name, so the process titles read "postgres: node_X: steep_repl supervisor".
	shown "pgrep -a -f 'node_[ab]: steep_repl supervisor'"
	pgrep -a -f 'node_[ab]: steep_repl supervisor' || say "(no supervisor process found)"
fi
say "The same duties once, by hand (reap expired leases, sample progress, drop expired slots):"
shown "bin/steep-repl tick --db \$NODE_B_URL"
"$STEEP_REPL" tick --db "$NODE_B_URL"

# ---------------------------------------------------------------------------------------------
heading "The sidecar's JSON log (.steep/sidecar_node_b.log)"
shown "tail -n 6 .steep/sidecar_node_b.log"
tail -n 6 .steep/sidecar_node_b.log

# ---------------------------------------------------------------------------------------------
heading "Done"
cat <<EOF
The cluster keeps running: node_a at $NODE_A_URL
                           node_b at $NODE_B_URL
(also in .steep/cluster.env). Try:
  psql '$NODE_B_URL' -c "SELECT steep_repl.enqueue_job('sleep', '{\"seconds\": 5}')"
  bin/steep-repl job list --db '$NODE_B_URL'
  bin/steep-console --db '$NODE_B_URL'
make cluster-down stops it and deletes .steep/.
EOF
