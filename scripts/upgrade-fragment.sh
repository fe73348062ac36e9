#!/usr/bin/env bash
# Prints, for an upgrade script, the current definition of each named function of sql/*.sql as
# CREATE OR REPLACE FUNCTION (every overload of the name), for pasting into
# migrations/steep_repl--<from>--<to>.sql after changing it in sql/:
#
#   scripts/upgrade-fragment.sh transition _init_fail >> migrations/steep_repl--1.0--1.1.sql
#
# A function ends at the first line after its header that closes its dollar quote ($$; or $x$;).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
[[ $# -gt 0 ]] || { echo "usage: $0 function_name..." >&2; exit 2; }
for name in "$@"; do
	out=$(LC_ALL=C awk -v name="$name" '
		index($0, "CREATE FUNCTION steep_repl." name "(") == 1 { on = 1; sub(/^CREATE FUNCTION/, "CREATE OR REPLACE FUNCTION") }
		on { print }
		on && /^\$[A-Za-z_]*\$;[[:space:]]*$/ { on = 0; print "" }
	' $(ls "$root"/sql/*.sql | LC_ALL=C sort))
	[[ -n $out ]] || { echo "upgrade-fragment: no function steep_repl.$name in sql/" >&2; exit 1; }
	printf '%s\n' "$out"
done
