package cli

import (
	"context"
	"flag"
	"fmt"
	"time"

	"github.com/steepdb/steep_repl/internal/api"
)

func reinitCommand() command {
	var tables, schemas, schemaSync string
	var parallel int
	var full, cascade, follow, jsonProgress, quiet, noColor bool
	var timeout time.Duration
	return command{
		name: "reinit", args: "NODE",
		summary: "copy chosen tables (--tables), schemas (--schema) or every replicated table (--full) of NODE (the --db node) again while the others keep replicating",
		example: "steep-repl reinit node_b --tables public.orders,public.order_lines --db postgres://10.0.0.2/postgres --follow",
		flags: func(fs *flag.FlagSet) {
			fs.StringVar(&tables, "tables", "", "these tables, comma-separated: schema.table, or table for public")
			fs.StringVar(&schemas, "schema", "", "the replicated tables of these schemas, comma-separated")
			fs.BoolVar(&full, "full", false, "every table the node's subscription replicates")
			fs.BoolVar(&cascade, "cascade", false, "add the tables that reference the scope's by a foreign key (else they are refused)")
			fs.StringVar(&schemaSync, "schema-sync", "", "strict | auto | manual: compare the replicated tables with the source's first; auto applies the differences here (a DIVERGED node with schema drift must match)")
			fs.IntVar(&parallel, "parallel", 0, "tables copied at once, 1-16 (default: the node's init's)")
			fs.BoolVar(&follow, "follow", false, "show progress until SYNCHRONIZED (exit 0), FAILED or cancelled (exit 1)")
			fs.BoolVar(&jsonProgress, "json-progress", false, "with --follow implied: one NDJSON progress object per line on stdout every 500ms (other messages go to stderr)")
			fs.BoolVar(&quiet, "quiet", false, "print only the final result line (or the error)")
			fs.BoolVar(&noColor, "no-color", false, "no ANSI colors (also off when NO_COLOR is set or stdout is not a terminal)")
			fs.DurationVar(&timeout, "timeout", 0, "with --follow: give up following after this long, e.g. 2h (0: never); the reinit goes on")
		},
		run: func(ctx context.Context, env *Env, fs *flag.FlagSet, args []string) error {
			scope, err := reinitScope(args, tables, schemas, full, cascade, parallel, timeout)
			if err != nil {
				return err
			}
			scope.SchemaSync = schemaSync
			node := args[0]
			f := newFollower(env, node, timeout, quiet, jsonProgress, noColor)
			f.reinit = true
			return withConn(ctx, env, func(db api.DB) error {
				id, err := api.StartReinit(ctx, db, node, scope)
				if err != nil {
					return err
				}
				if p, err := api.GetInitProgress(ctx, db, node); err == nil && p != nil {
					f.source = p.Source
				}
				if !quiet {
					fmt.Fprintf(f.human, "reinit of %s started (job %d)\n", node, id)
				}
				if !follow && !jsonProgress {
					return nil
				}
				return f.run(ctx, db)
			})
		},
	}
}

// reinitScope checks the reinit command line and turns it into start_reinit's scope.
func reinitScope(args []string, tables, schemas string, full, cascade bool, parallel int, timeout time.Duration) (api.ReinitScope, error) {
	scope := api.ReinitScope{Tables: splitList(tables), Schemas: splitList(schemas), Full: full, Cascade: cascade, Parallel: parallel}
	if len(args) != 1 {
		return scope, usageError{"need a NODE"}
	}
	n := 0
	for _, set := range []bool{len(scope.Tables) > 0, len(scope.Schemas) > 0, full} {
		if set {
			n++
		}
	}
	if n != 1 {
		return scope, usageError{"need exactly one of --tables, --schema or --full"}
	}
	if parallel < 0 {
		return scope, usageError{"--parallel must be positive"}
	}
	if timeout < 0 {
		return scope, usageError{"--timeout must not be negative"}
	}
	return scope, nil
}
