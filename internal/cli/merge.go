package cli

import (
	"context"
	"flag"
	"fmt"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/steepdb/steep_repl/internal/api"
	"github.com/steepdb/steep_repl/internal/progress"
)

// tableStrategies collects repeated --table-strategy schema.table=STRATEGY flags.
type tableStrategies map[string]string

func (t tableStrategies) String() string {
	var parts []string
	for k, v := range t {
		parts = append(parts, k+"="+v)
	}
	return strings.Join(parts, ",")
}

func (t tableStrategies) Set(s string) error {
	table, strategy, ok := strings.Cut(s, "=")
	if !ok || table == "" || strategy == "" {
		return fmt.Errorf("want schema.table=STRATEGY, got %q", s)
	}
	t[table] = strategy
	return nil
}

func mergeCommand() command {
	var from, strategy, tables string
	var dryRun, follow, asJSON, quiet, noColor, verify bool
	var timeout time.Duration
	perTable := tableStrategies{}
	return command{
		name: "merge", args: "TARGET",
		summary: "merge node TARGET (the --db node) and --from SOURCE, which both hold data: rows missing on a side are copied to it, conflicting rows resolved by --strategy, then each subscribes to the other (both SYNCHRONIZED); --dry-run only prints what would move",
		example: "steep-repl merge node_b --from node_a --strategy prefer-source --table-strategy public.prices=last-modified --dry-run --db postgres://10.0.0.2/postgres",
		flags: func(fs *flag.FlagSet) {
			fs.StringVar(&from, "from", "", "the other node, the merge's source (required)")
			fs.StringVar(&strategy, "strategy", "", "how a row that differs is resolved: prefer-source, prefer-target, last-modified (newer commit wins, a tie goes to the source) or manual (reported, nothing moves; the default)")
			fs.Var(perTable, "table-strategy", "schema.table=STRATEGY: another strategy for one table (repeatable)")
			fs.StringVar(&tables, "tables", "", "only these tables, comma-separated schema.table (default: every user table)")
			fs.BoolVar(&dryRun, "dry-run", false, "print what would move per table and direction (merge_plan), change nothing, start no init")
			fs.BoolVar(&asJSON, "json", false, "with --dry-run: print every row of the plan as a JSON array")
			fs.BoolVar(&verify, "verify", false, "once SYNCHRONIZED, compare every row with the other node (steep_repl.verify; event init.verified)")
			fs.BoolVar(&follow, "follow", false, "show progress until SYNCHRONIZED (exit 0), FAILED or cancelled (exit 1)")
			fs.BoolVar(&quiet, "quiet", false, "print only the final result line (or the error)")
			fs.BoolVar(&noColor, "no-color", false, "no ANSI colors (also off when NO_COLOR is set or stdout is not a terminal)")
			fs.DurationVar(&timeout, "timeout", 0, "with --follow: give up following after this long (0: never); the merge goes on")
		},
		run: func(ctx context.Context, env *Env, fs *flag.FlagSet, args []string) error {
			if len(args) != 1 || from == "" {
				return usageError{"need a TARGET node and --from SOURCE"}
			}
			if asJSON && !dryRun {
				return usageError{"--json goes with --dry-run"}
			}
			target := args[0]
			opts := map[string]any{}
			if strategy != "" {
				opts["strategy"] = strategy
			}
			if len(perTable) > 0 {
				opts["table_strategies"] = map[string]string(perTable)
			}
			if verify {
				opts["verify"] = true
			}
			if list := splitList(tables); len(list) > 0 {
				opts["tables"] = list
			}
			return withConn(ctx, env, func(db api.DB) error {
				if dryRun {
					return printMergePlan(ctx, env, db, from, opts, asJSON)
				}
				id, err := api.StartMerge(ctx, db, target, from, opts)
				if err != nil {
					return err
				}
				if !quiet {
					fmt.Fprintf(env.Stdout, "merge of %s with %s started (job %d)\n", target, from, id)
				}
				if !follow {
					return nil
				}
				f := newFollower(env, target, timeout, quiet, false, noColor)
				f.source = from
				return f.run(ctx, db)
			})
		},
	}
}

// printMergePlan prints what a merge with peer would move: per table and direction, or every row as JSON.
func printMergePlan(ctx context.Context, env *Env, db api.DB, peer string, opts map[string]any, asJSON bool) error {
	rows, err := api.PlanMerge(ctx, db, peer, opts)
	if err != nil {
		return err
	}
	if asJSON {
		if rows == nil {
			rows = []api.MergeRow{}
		}
		return writeSchemaJSON(env.Stdout, rows)
	}
	type counts struct{ toLocal, toPeer, manual, ties int }
	var order []string
	by := map[string]*counts{}
	for _, r := range rows {
		k := progress.Escape(r.Schema) + "." + progress.Escape(r.Table)
		c := by[k]
		if c == nil {
			c = &counts{}
			by[k] = c
			order = append(order, k)
		}
		switch r.Resolution {
		case "to_local":
			c.toLocal++
		case "to_peer":
			c.toPeer++
		default:
			c.manual++
		}
		if r.Tie {
			c.ties++
		}
	}
	if len(rows) == 0 {
		fmt.Fprintf(env.Stdout, "nothing to move: every row in scope is the same on node %s\n", progress.Escape(peer))
		return nil
	}
	tw := tabwriter.NewWriter(env.Stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintf(tw, "TABLE\tFROM %s\tTO %s\tMANUAL\tTIES\n", strings.ToUpper(progress.Escape(peer)), strings.ToUpper(progress.Escape(peer)))
	for _, k := range order {
		c := by[k]
		fmt.Fprintf(tw, "%s\t%d\t%d\t%d\t%d\n", k, c.toLocal, c.toPeer, c.manual, c.ties)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	fmt.Fprintln(env.Stdout, "dry run: nothing changed (--json lists every row)")
	return nil
}
