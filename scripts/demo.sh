#!/usr/bin/env bash
# scripts/demo.sh — `make demo`: a local two-node init, end to end.
#   node_a holds Chinook plus a generated table; node_b has the same tables, empty.
#   In psql on node_b: SELECT steep_repl.start_init('node_b', 'node_a');
#   live progress until SYNCHRONIZED, every table compared by hash on both nodes,
#   then a row inserted on node_a is shown arriving on node_b.
# Non-interactive. The cluster keeps running afterwards (make cluster-down stops it).
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"
STEEP_REPL=$ROOT/bin/steep-repl
CHINOOK=${STEEP_SHARED_DIR:-$ROOT/../shared}/datasets/chinook/chinook.sql
DEMO_ROWS=${DEMO_ROWS:-1500000}
STEP=0

if [[ -t 1 ]]; then BOLD=$'\033[1m' DIM=$'\033[2m' RESET=$'\033[0m'; else BOLD='' DIM='' RESET=''; fi
heading() { STEP=$((STEP + 1)); printf '\n%s== %d. %s ==%s\n' "$BOLD" "$STEP" "$*" "$RESET"; }
say() { printf '%s\n' "$*"; }
die() { printf 'demo: %s\n' "$*" >&2; exit 1; }

# psql is the front door of the demo: the one of the server's major that make setup builds next to
# the server (.cache/pg<major>/bin), not whatever the machine has.
PG_HOME=${STEEP_PG_HOME:-$ROOT/.cache/pg${PG_MAJOR:-18}}
PSQL_BIN=$PG_HOME/bin/psql
[[ -x $PSQL_BIN ]] || die "no psql in $PG_HOME/bin: run make setup (it builds PostgreSQL's client programs)"
PSQL_SHOWN=${PSQL_BIN#"$ROOT"/} # how the closing hints spell it (relative to the repository)
[[ -r $CHINOOK ]] || die "Chinook not found at $CHINOOK (set STEEP_SHARED_DIR to the folder holding datasets/)"

PSQL=("$PSQL_BIN" -X -q -P pager=off -v ON_ERROR_STOP=1)
q() { "${PSQL[@]}" -At -d "$1" -c "$2"; }
show() { printf '%s%s=# %s%s\n' "$DIM" "$1" "$3" "$RESET"; "${PSQL[@]}" -d "$2" -c "$3"; }

# ---------------------------------------------------------------------------------------------
heading "A fresh two-node cluster: node_a and node_b, a sidecar each (scripts/cluster.sh)"
"$ROOT/scripts/cluster.sh" down >/dev/null 2>&1 || true
"$ROOT/scripts/cluster.sh" up
A=$(sed -n 's/^NODE_A_URL=//p' .steep/cluster.env)
B=$(sed -n 's/^NODE_B_URL=//p' .steep/cluster.env)

# ---------------------------------------------------------------------------------------------
heading "Data on node_a: Chinook (11 tables) and demo_events ($DEMO_ROWS rows); node_b: same tables, empty"
# Chinook's script creates its own database and switches to it: keep only its tables and rows.
chinook_sql() { grep -v -e '^\\' -e '^DROP DATABASE' -e '^CREATE DATABASE' "$CHINOOK"; }
EVENTS_DDL="CREATE TABLE demo_events (id bigint PRIMARY KEY, account int NOT NULL, kind text NOT NULL, payload text NOT NULL, at timestamptz NOT NULL)"
for url in "$A" "$B"; do
	chinook_sql | "${PSQL[@]}" -d "$url" >/dev/null
	q "$url" "$EVENTS_DDL" >/dev/null
done
q "$A" "INSERT INTO demo_events SELECT g, g % 5000, (ARRAY['login','order','refund','view'])[1 + g % 4],
        md5(g::text) || md5((g * 31)::text), now() - g * interval '1 second' FROM generate_series(1, $DEMO_ROWS) g;
        ANALYZE" >/dev/null
q "$B" "DO \$\$ DECLARE r record; BEGIN
          FOR r IN SELECT format('%I.%I', schemaname, tablename) t FROM pg_tables WHERE schemaname = 'public' LOOP
            EXECUTE 'TRUNCATE ' || r.t || ' CASCADE'; END LOOP; END \$\$" >/dev/null
show node_a "$A" "SELECT count(*) AS tables, pg_size_pretty(sum(pg_table_size(format('%I.%I', schemaname, tablename)))) AS size FROM pg_tables WHERE schemaname = 'public';"

# ---------------------------------------------------------------------------------------------
heading "In psql on node_b: start the init"
show node_b "$B" "SELECT steep_repl.start_init('node_b', 'node_a');"
say "start_init checked both schemas, the source's reachability and that node_b is empty, then"
say "queued the init for node_b's sidecar, which creates the publication and the subscription."

# ---------------------------------------------------------------------------------------------
heading "Live progress (steep-repl init status node_b --follow, read from steep_repl.init_progress)"
"$STEEP_REPL" init status node_b --follow --db "$B" || die "the init did not reach SYNCHRONIZED: see .steep/node_b.log and .steep/sidecar_node_b.log"
"$STEEP_REPL" init status node_b --db "$B" --no-color | head -n 20

# ---------------------------------------------------------------------------------------------
heading "Every table on both nodes, hashed row by row"
HASH="SELECT format('%-16s %8s rows  %s', t.tablename, (xpath('/row/c/text()', query_to_xml(format('SELECT count(*) AS c FROM %I', t.tablename), false, true, '')))[1],
             (xpath('/row/h/text()', query_to_xml(format('SELECT md5(coalesce(string_agg(md5(x::text), '''' ORDER BY md5(x::text)), '''')) AS h FROM %I x', t.tablename), false, true, '')))[1])
      FROM pg_tables t WHERE t.schemaname = 'public' ORDER BY t.tablename"
q "$A" "$HASH" >.steep/demo_hash_a
q "$B" "$HASH" >.steep/demo_hash_b
paste -d'|' .steep/demo_hash_a .steep/demo_hash_b | while IFS='|' read -r a b; do
	mark="equal"
	[[ $a == "$b" ]] || mark="DIFFERENT"
	printf '  %s  %s\n' "$a" "$mark"
done
cmp -s .steep/demo_hash_a .steep/demo_hash_b || die "node_b differs from node_a"

# ---------------------------------------------------------------------------------------------
heading "Replication goes on: a row inserted on node_a arrives on node_b"
show node_a "$A" "INSERT INTO artist (name) VALUES ('The Steep Replicators') RETURNING artist_id, name;"
for ((i = 0; i < 50; i++)); do
	got=$(q "$B" "SELECT count(*) FROM artist WHERE name = 'The Steep Replicators'")
	[[ $got == 1 ]] && break
	sleep 0.1
done
show node_b "$B" "SELECT artist_id, name FROM artist WHERE name = 'The Steep Replicators';"
[[ $got == 1 ]] || die "the row did not arrive on node_b within 5 s"

# ---------------------------------------------------------------------------------------------
heading "What happened, as recorded on node_b (steep_repl.events)"
show node_b "$B" "SELECT to_char(at, 'HH24:MI:SS.MS') AS at, event, from_state, to_state, detail->>'reason' AS reason FROM steep_repl.events WHERE node = 'node_b' ORDER BY id;"

heading "Done"
cat <<EOF
The cluster keeps running (URLs in .steep/cluster.env):
  $PSQL_SHOWN '$B' -c 'SELECT * FROM steep_repl.init_progress'
  bin/steep-repl init status node_b --db '$B'
  bin/steep-console --db '$B'
make cluster-down stops it and deletes .steep/.
EOF
