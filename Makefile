# steep_repl: top-level build. Every target that needs the PostgreSQL toolchain installs it first
# (scripts/setup.sh: pinned, cached in .cache/, a no-op when already there).

PG_MAJOR  ?= 18
PG_HOME   := $(CURDIR)/.cache/pg$(PG_MAJOR)
PG_CONFIG_CACHED := $(PG_HOME)/bin/pg_config
GO        ?= go
# Four tests at a time: most of a test's time is spent waiting on servers, ticks and copies. The
# majors run one after the other: run at the same time (three tests each) they saturated the 2
# cores and passed go test's 18 min timeout.
GOFLAGS_TEST ?= -count=1 -timeout 18m -parallel 4
# Debian's Makefile.global passes flags gcc 12 rejects and wants clang for bitcode: override both
# for the cached toolchain only (a real server's pg_config is used as is).
EXT_MAKE_FLAGS := PG_CONFIG=$(PG_CONFIG_CACHED) with_llvm=no CC=gcc \
	CFLAGS="-O2 -g -Wall -Wmissing-prototypes -Wpointer-arith -Wdeclaration-after-statement -Werror=vla -Wendif-labels -Wformat-security -fno-strict-aliasing -fwrapv"

.PHONY: all setup install-ext build test test-all test-go bench soak cluster cluster-down demo clean help

all: build install-ext

help:
	@echo "make demo          two local nodes, a job enqueued in psql and run by a sidecar"
	@echo "make test          every test against real PostgreSQL 18 and 17 clusters (PG_MAJORS=18 for one); long scenarios on 18 only"
	@echo "make test-all      make test with the long scenarios against every major too"
	@echo "make bench         benchmarks (queue latency and throughput)"
	@echo "make soak          the soak tests: write load, inits and snapshots, sidecar kills (STEEP_SOAK_MINUTES=20)"
	@echo "make cluster       start node_a and node_b with a sidecar each (.steep/cluster.env)"
	@echo "make cluster-down  stop what make cluster started"
	@echo "make setup         install the pinned PostgreSQL toolchain into .cache/"

setup:
	@scripts/setup.sh $(PG_MAJOR)

# Objects built against another major's headers must not be reused: clean when the major changes.
install-ext: setup
	@if [ "$$(cat extension/.built-for 2>/dev/null)" != "$(PG_MAJOR)" ]; then \
		$(MAKE) -s -C extension $(EXT_MAKE_FLAGS) clean >/dev/null; echo $(PG_MAJOR) > extension/.built-for; fi
	@$(MAKE) -s -C extension $(EXT_MAKE_FLAGS) install >/dev/null

build:
	$(GO) build -o bin/steep-repl ./sidecar
	$(GO) build -o bin/steep-console ./console

# The whole suite runs against each supported server build (18 is the reference, then 17).
# The long end-to-end scenarios (tests that call scenario(t): faults, console and CLI sessions
# followed to the end, reinits under load) run against the first major only, which keeps make
# test inside its time budget; make test-all runs them against every major.
PG_MAJORS ?= 18 17
SCENARIO_MAJORS ?= $(firstword $(PG_MAJORS))

test: build
	@scripts/test-deps.sh
	$(GO) vet ./...
	@for major in $(PG_MAJORS); do \
		$(MAKE) --no-print-directory install-ext PG_MAJOR=$$major || exit 1; \
		case " $(SCENARIO_MAJORS) " in *" $$major "*) scenarios=all;; *) scenarios=none;; esac; \
		echo "== tests against PostgreSQL $$major (long scenarios: $$scenarios)"; \
		STEEP_SCENARIOS=$$scenarios STEEP_PG_HOME=$(CURDIR)/.cache/pg$$major $(GO) test $(GOFLAGS_TEST) ./... || exit 1; \
	done

test-all:
	@$(MAKE) --no-print-directory test SCENARIO_MAJORS="$(PG_MAJORS)"

bench: install-ext build
	@scripts/test-deps.sh
	STEEP_PG_HOME=$(PG_HOME) $(GO) test -count=1 -timeout 30m -run '^$$' -bench . -benchtime 1x ./tests/...

# The soak tests (gated by STEEP_SOAK=1, named TestSoak*) run for STEEP_SOAK_MINUTES; go test's
# timeout leaves them 15 minutes beyond it. STEEP_SOAK_SEED replays a run's kills.
STEEP_SOAK_MINUTES ?= 20
soak: install-ext build
	@scripts/test-deps.sh
	STEEP_SOAK=1 STEEP_SOAK_MINUTES=$(STEEP_SOAK_MINUTES) STEEP_PG_HOME=$(PG_HOME) \
		$(GO) test -count=1 -v -timeout $$(($(STEEP_SOAK_MINUTES) + 15))m -run '^TestSoak' ./tests/

cluster: install-ext build
	@scripts/cluster.sh up

cluster-down:
	@scripts/cluster.sh down

demo: install-ext build
	@scripts/demo.sh

clean:
	-$(MAKE) -s -C extension $(EXT_MAKE_FLAGS) clean
	rm -rf bin
