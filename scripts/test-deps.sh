#!/usr/bin/env bash
# Installs what the tests need beyond Go and the PostgreSQL toolchain: tmux (the console's
# end-to-end tests drive bin/steep-console in it). A no-op when it is there.
set -euo pipefail
command -v tmux >/dev/null 2>&1 && exit 0
if [[ $(id -u) -ne 0 ]]; then
	echo "test-deps: tmux is missing: install it (sudo apt-get install tmux)" >&2
	exit 1
fi
echo "test-deps: installing tmux with apt-get" >&2
export DEBIAN_FRONTEND=noninteractive
apt-get install -y -q tmux >/dev/null 2>&1 ||
	{ apt-get update -q >/dev/null 2>&1 && apt-get install -y -q tmux >/dev/null 2>&1; } ||
	{ echo "test-deps: apt-get install tmux failed" >&2; exit 1; }
