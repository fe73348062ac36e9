// Command steep-console is the live terminal console. Until its own issue lands it prints the
// nodes registry once (same data the console will draw) and exits.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"strings"

	"github.com/steepdb/steep_repl/internal/api"
	"github.com/steepdb/steep_repl/internal/dbconn"
)

func main() {
	db := flag.String("db", "", "node to connect to (default: libpq environment)")
	flag.Parse()
	ctx := context.Background()
	conn, err := dbconn.Connect(ctx, *db, "steep-console")
	if err != nil {
		fmt.Fprintln(os.Stderr, "steep-console:", err)
		os.Exit(1)
	}
	defer conn.Close(ctx)
	nodes, err := api.ListNodes(ctx, conn)
	if err != nil {
		fmt.Fprintln(os.Stderr, "steep-console:", err)
		os.Exit(1)
	}
	fmt.Println("steep-console (preview: the interactive console is not built yet)")
	for _, n := range nodes {
		fmt.Printf("  %-20s %s\n", n.Name, strings.ToUpper(n.InitState))
	}
}
