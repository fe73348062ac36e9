// Command steep-repl is the steep_repl sidecar daemon (steep-repl run) and command line.
package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"

	"github.com/steepdb/steep_repl/internal/cli"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := cli.Main(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}
