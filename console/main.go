// Command steep-console is the live terminal console of a steep_repl cluster: nodes, init
// progress, conflicts and events, drawn from the extension's tables and refreshed on NOTIFY.
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
	noListen := flag.Bool("no-listen", false, "do not LISTEN for events: poll only (the fallback, for comparison)")
	flag.Parse()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	err := console.Run(ctx, console.Options{Model: model.Config{URLs: dbs, NoListen: *noListen}})
	if err != nil {
		fmt.Fprintln(os.Stderr, "steep-console:", err)
		os.Exit(1)
	}
}
