#!/usr/bin/env bash
# Runs `go test ./...` against every given PostgreSQL major at the same time, each with its own
# installation (.cache/pg<major>) and its own clusters, and prints each run's output once all
# have ended: on 2 cores the suite spends most of its time waiting on servers, ticks and copies,
# so the majors overlap well. Exit status 1 when any run failed. GOFLAGS_TEST are go test's flags.
#
#   scripts/test-majors.sh 18 17
set -uo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
[[ $# -gt 0 ]] || { echo "usage: $0 major..." >&2; exit 2; }
logs=$(mktemp -d)
trap 'rm -rf "$logs"; kill $(jobs -p) 2>/dev/null' EXIT
declare -A pids
for major in "$@"; do
	# shellcheck disable=SC2086 # GOFLAGS_TEST is a list of flags
	STEEP_PG_HOME="$root/.cache/pg$major" go test ${GOFLAGS_TEST:-} ./... >"$logs/$major.log" 2>&1 &
	pids[$major]=$!
	echo "== tests against PostgreSQL $major started (pid ${pids[$major]})"
done
# A line every two minutes, so a terminal (or a CI log) shows the runs are alive.
( start=$SECONDS; while sleep 120; do echo "== tests still running ($(( (SECONDS - start) / 60 )) min)"; done ) &
ticker=$!
failed=()
for major in "$@"; do
	wait "${pids[$major]}" || failed+=("$major")
done
kill "$ticker" 2>/dev/null
for major in "$@"; do
	echo "== tests against PostgreSQL $major"
	cat "$logs/$major.log"
done
if [[ ${#failed[@]} -gt 0 ]]; then
	echo "== FAILED against PostgreSQL ${failed[*]}" >&2
	exit 1
fi
echo "== passed against PostgreSQL $*"
