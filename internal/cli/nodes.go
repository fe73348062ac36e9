package cli

import (
	"context"
	"flag"
	"fmt"
	"text/tabwriter"
	"time"

	"github.com/steepdb/steep_repl/internal/api"
	"github.com/steepdb/steep_repl/internal/dbconn"
	"github.com/steepdb/steep_repl/internal/progress"
)

// withConn runs f on a connection to the --db node.
func withConn(ctx context.Context, env *Env, f func(db api.DB) error) error {
	if _, err := dbconn.ParseConfig(*env.db); err != nil {
		if *env.db == "" {
			return fmt.Errorf("the libpq environment (PGHOST, PGPORT, PGSERVICE, ...) does not make a connection string: %w", err)
		}
		return usageError{fmt.Sprintf("--db is neither a postgres:// URL nor a key=value conninfo: %v", err)}
	}
	conn, err := dbconn.Connect(ctx, *env.db, "steep-repl")
	if err != nil {
		return err
	}
	defer conn.Close(context.Background())
	return f(conn)
}

func nodeCommands() []command {
	var conninfo string
	var local bool
	var reason string
	return []command{{
		name: "node register", args: "NAME", summary: "register a node (with --local for the node --db connects to)",
		example: "steep-repl node register node_b --conninfo 'host=10.0.0.2 dbname=postgres user=steep' --db postgres://localhost/postgres",
		flags: func(fs *flag.FlagSet) {
			fs.StringVar(&conninfo, "conninfo", "", "libpq connection string other nodes use to reach this node (required)")
			fs.BoolVar(&local, "local", false, "this is the node --db connects to")
		},
		run: func(ctx context.Context, env *Env, fs *flag.FlagSet, args []string) error {
			if len(args) != 1 || conninfo == "" {
				return usageError{"need a node NAME and --conninfo"}
			}
			return withConn(ctx, env, func(db api.DB) error {
				if err := api.RegisterNode(ctx, db, args[0], conninfo, local); err != nil {
					return err
				}
				fmt.Fprintf(env.Stdout, "registered node %s (reached at %s)\n", args[0], dbconn.DescribeURL(conninfo))
				return nil
			})
		},
	}, {
		name: "node unregister", args: "NAME", summary: "remove a node that has no init in progress",
		example: "steep-repl node unregister node_c",
		run: func(ctx context.Context, env *Env, fs *flag.FlagSet, args []string) error {
			if len(args) != 1 {
				return usageError{"need a node NAME"}
			}
			return withConn(ctx, env, func(db api.DB) error { return api.UnregisterNode(ctx, db, args[0]) })
		},
	}, {
		name: "node list", summary: "list nodes with their init state",
		example: "steep-repl node list",
		run: func(ctx context.Context, env *Env, fs *flag.FlagSet, args []string) error {
			return withConn(ctx, env, func(db api.DB) error {
				nodes, err := api.ListNodes(ctx, db)
				if err != nil {
					return err
				}
				tw := tabwriter.NewWriter(env.Stdout, 0, 4, 2, ' ', 0)
				fmt.Fprintln(tw, "NODE\tLOCAL\tSTATE\tSOURCE\tSINCE\tLAST ERROR")
				for _, n := range nodes {
					fmt.Fprintf(tw, "%s\t%v\t%s\t%s\t%s\t%s\n", progress.Escape(n.Name), n.IsLocal, progress.Escape(upper(n.InitState)),
						progress.Escape(deref(n.InitSource)), n.StateChangedAt.Local().Format(time.DateTime), progress.Escape(deref(n.LastError)))
				}
				return tw.Flush()
			})
		},
	}, {
		name: "node transition", args: "NAME STATE", summary: "move a node's init state by hand (validated by the state machine)",
		example: "steep-repl node transition node_b uninitialized --reason 'reset after manual cleanup'",
		flags: func(fs *flag.FlagSet) {
			fs.StringVar(&reason, "reason", "", "why (recorded in the event; required for FAILED)")
		},
		run: func(ctx context.Context, env *Env, fs *flag.FlagSet, args []string) error {
			if len(args) != 2 {
				return usageError{"need a node NAME and a STATE"}
			}
			return withConn(ctx, env, func(db api.DB) error {
				state, err := api.Transition(ctx, db, args[0], args[1], reason)
				if err == nil {
					fmt.Fprintf(env.Stdout, "node %s is now %s\n", args[0], upper(state))
				}
				return err
			})
		},
	}}
}

func deref(s *string) string {
	if s == nil {
		return ""
	}
	return *s
}
