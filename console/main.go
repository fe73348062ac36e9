// Command steep-console is the live terminal console of a steep_repl cluster: nodes, init
// and snapshot progress, conflicts and events, drawn from the extension's tables and
// refreshed on NOTIFY.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/steepdb/steep_repl/internal/console"
	"github.com/steepdb/steep_repl/internal/console/model"
)

type urls []string

// String is for the flag package.
func (u *urls) String() string { return fmt.Sprint(len(*u), " node(s)") }

// Set appends one --db value.
func (u *urls) Set(s string) error { *u = append(*u, s); return nil }

func main() {
	var dbs urls
	flag.Var(&dbs, "db", "node to connect to, a postgres:// URL or conninfo (repeatable; default: the libpq environment)")
	noListen := flag.Bool("no-listen", false, "do not LISTEN for events and progress: poll only (the fallback, for comparison)")
	flag.Usage = func() {
		fmt.Fprint(flag.CommandLine.Output(), `steep-console: the live console of a steep_repl cluster.

It connects to the --db node(s), finds the other nodes in steep_repl.nodes (connecting with their
registered conninfo when the role may read it, i.e. a superuser), and shows every node's init state,
progress, rows/s, ETA, apply lag, conflicts and the snapshots being generated or applied on it,
redrawn on NOTIFY steep_repl_events and steep_repl_progress (polling every 1-2 s as a fallback).
Unreachable nodes are shown as such and retried. The help bar at the bottom lists the keys; ? shows
them with what they do (D detail, C cancel an init, S snapshots and Enter for one's progress,
F conflicts, E events, q quit).

usage: steep-console [--db URL]... [--no-listen]

`)
		flag.PrintDefaults()
	}
	flag.Parse()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	err := console.Run(ctx, console.Options{Model: model.Config{URLs: dbs, NoListen: *noListen}})
	if err != nil {
		fmt.Fprintln(os.Stderr, "steep-console:", err)
		os.Exit(1)
	}
}
