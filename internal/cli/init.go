package cli

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
	"text/tabwriter"
	"time"

	"golang.org/x/term"

	"github.com/steepdb/steep_repl/internal/api"
	"github.com/steepdb/steep_repl/internal/progress"
)

// pollInterval is how often --follow, --wait and --json-progress read the progress
// (the server samples it about every second).
const pollInterval = 500 * time.Millisecond

// cancelWaitTimeout bounds init cancel --wait.
const cancelWaitTimeout = 60 * time.Second

func initCommands() []command {
	return []command{initStartCommand(), initCancelCommand(), initStatusCommand()}
}

func initStartCommand() command {
	var from, tables, schemas string
	var parallel int
	var force, follow, jsonProgress, quiet, noColor, confirm bool
	var schemaSync string
	var timeout time.Duration
	return command{
		name: "init", args: "TARGET",
		summary: "initialize node TARGET (the --db node) from --from SOURCE; --follow shows progress until SYNCHRONIZED",
		example: "steep-repl init node_b --from node_a --db postgres://10.0.0.2/postgres --parallel 8 --follow",
		flags: func(fs *flag.FlagSet) {
			fs.StringVar(&from, "from", "", "source node to copy from (required)")
			fs.IntVar(&parallel, "parallel", 0, "tables copied at once, 1-16 (default: the extension's, 4)")
			fs.StringVar(&tables, "tables", "", "only these tables, comma-separated: schema.table, or table for public (default: all)")
			fs.StringVar(&schemas, "schemas", "", "only tables of these schemas, comma-separated (default: all)")
			fs.BoolVar(&force, "force", false, "truncate target tables that already hold rows instead of refusing")
			fs.StringVar(&schemaSync, "schema-sync", "", "strict (refuse differences), auto (apply safe DDL to the target) or manual (needs --confirm); default: the configured mode, strict")
			fs.BoolVar(&confirm, "confirm", false, "with --schema-sync manual: go on despite schema differences")
			fs.BoolVar(&follow, "follow", false, "show progress until SYNCHRONIZED (exit 0), FAILED or cancelled (exit 1)")
			fs.BoolVar(&jsonProgress, "json-progress", false, "with --follow implied: one NDJSON progress object per line on stdout every 500ms (other messages go to stderr)")
			fs.BoolVar(&quiet, "quiet", false, "print only the final result line (or the error)")
			fs.BoolVar(&noColor, "no-color", false, "no ANSI colors (also off when NO_COLOR is set or stdout is not a terminal)")
			fs.DurationVar(&timeout, "timeout", 0, "with --follow: give up following after this long, e.g. 2h (0: never); the init goes on")
		},
		run: func(ctx context.Context, env *Env, fs *flag.FlagSet, args []string) error {
			if len(args) != 1 || from == "" {
				return usageError{"need a TARGET node and --from SOURCE"}
			}
			if parallel < 0 {
				return usageError{"--parallel must be positive"}
			}
			if timeout < 0 {
				return usageError{"--timeout must not be negative"}
			}
			target := args[0]
			opts := api.InitOptions{Parallel: parallel, Tables: splitList(tables), Schemas: splitList(schemas), Force: force,
				SchemaSync: schemaSync, Confirm: confirm}
			f := newFollower(env, target, timeout, quiet, jsonProgress, noColor)
			f.source = from
			return withConn(ctx, env, func(db api.DB) error {
				id, err := api.StartInit(ctx, db, target, from, opts)
				if err != nil {
					return err
				}
				if !quiet {
					fmt.Fprintf(f.human, "init of %s from %s started (job %d)\n", target, from, id)
				}
				if !follow && !jsonProgress {
					return nil
				}
				return f.run(ctx, db)
			})
		},
	}
}

func initCancelCommand() command {
	var wait bool
	return command{
		name: "init cancel", args: "NODE",
		summary: "cancel NODE's init (or clean up a FAILED one): drop its replication objects, truncate the copied tables",
		example: "steep-repl init cancel node_b --db postgres://10.0.0.2/postgres --wait",
		flags: func(fs *flag.FlagSet) {
			fs.BoolVar(&wait, "wait", false, "wait (up to 60s) until the node is back to UNINITIALIZED")
		},
		run: func(ctx context.Context, env *Env, fs *flag.FlagSet, args []string) error {
			if len(args) != 1 {
				return usageError{"need a NODE"}
			}
			node := args[0]
			return withConn(ctx, env, func(db api.DB) error {
				id, err := api.CancelInit(ctx, db, node)
				if err != nil {
					return err
				}
				if id == 0 {
					fmt.Fprintf(env.Stdout, "%s has no init to cancel\n", node)
					return nil
				}
				fmt.Fprintf(env.Stdout, "cancel of %s's init requested (job %d); the sidecar drops the subscription, "+
					"slots and publication and truncates the copied tables\n", node, id)
				if !wait {
					return nil
				}
				return waitCancelled(ctx, env, db, node, id)
			})
		},
	}
}

func initStatusCommand() command {
	var asJSON, noColor, follow bool
	return command{
		name: "init status", args: "NODE",
		summary: "show NODE's init progress and the copy state of each table",
		example: "steep-repl init status node_b --db postgres://10.0.0.2/postgres --follow",
		flags: func(fs *flag.FlagSet) {
			fs.BoolVar(&asJSON, "json", false, "print the progress as one JSON object (the --json-progress format)")
			fs.BoolVar(&noColor, "no-color", false, "no ANSI colors (also off when NO_COLOR is set or stdout is not a terminal)")
			fs.BoolVar(&follow, "follow", false, "keep showing the progress line until SYNCHRONIZED (exit 0), FAILED or cancelled (exit 1)")
		},
		run: func(ctx context.Context, env *Env, fs *flag.FlagSet, args []string) error {
			if len(args) != 1 {
				return usageError{"need a NODE"}
			}
			node := args[0]
			tty := isTerminal(env.Stdout)
			color := useColor(tty, noColor, os.Getenv("NO_COLOR"), os.Getenv("TERM"))
			return withConn(ctx, env, func(db api.DB) error {
				if follow {
					f := follower{target: node, mode: chooseMode(asJSON, false, tty, os.Getenv("TERM")), color: color,
						out: env.Stdout, human: env.Stdout, width: termWidth(env.Stdout)}
					return f.run(ctx, db)
				}
				p, err := api.GetInitProgress(ctx, db, node)
				if err != nil {
					return err
				}
				var snap progress.Snapshot
				if p != nil {
					snap = snapshotOf(p, time.Now())
				} else {
					n, err := findNode(ctx, db, node)
					if err != nil {
						return err
					}
					snap = progress.Snapshot{Time: time.Now(), Node: node, Source: deref(n.InitSource), State: n.InitState}
				}
				if asJSON {
					b, err := progress.JSON(snap)
					if err != nil {
						return err
					}
					_, err = fmt.Fprintf(env.Stdout, "%s\n", b)
					return err
				}
				if p == nil {
					fmt.Fprintf(env.Stdout, "%s has no init (state %s)\n", node, upper(snap.State))
					return nil
				}
				ts, err := api.ListInitTables(ctx, db, node)
				if err != nil {
					return err
				}
				return printStatus(env.Stdout, p, snap, ts, color)
			})
		},
	}
}

// printStatus writes init status: the progress line (colored: straight to the terminal, its
// data escaped by package progress), its detail, the init's facts and a table of the
// per-table progress.
func printStatus(w io.Writer, p *api.InitProgress, snap progress.Snapshot, ts []api.InitTable, color bool) error {
	if color {
		fmt.Fprintln(terminal(w), progress.Line(snap, true))
	} else {
		fmt.Fprintln(w, progress.Line(snap, false))
	}
	if d := progress.Detail(snap); d != "" {
		fmt.Fprintln(w, d)
	}
	fmt.Fprintf(w, "from %s, %d parallel workers, started %s, sampled %s ago\n\n", progress.Escape(p.Source), p.ParallelWorkers,
		p.StartedAt.Local().Format(time.DateTime), progress.Duration(snap.Time.Sub(p.UpdatedAt).Seconds()))
	if len(ts) == 0 {
		fmt.Fprintln(w, "(no tables)")
		return nil
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "TABLE\tSTATE\tROWS\tSIZE\t%")
	for _, r := range tableRows(ts) {
		fmt.Fprintln(tw, strings.TrimRight(strings.Join(r, "\t"), "\t"))
	}
	return tw.Flush()
}

// tableRows formats the per-table progress: schema.table (quoted as format('%I.%I') does),
// state, rows copied / source estimate ("--" when the source has none: a table never
// analyzed), source size, percent, and "large" for the tables the server counts as large.
func tableRows(ts []api.InitTable) [][]string {
	out := make([][]string, 0, len(ts))
	for _, t := range ts {
		large, est := "", progress.Estimate(t.SourceRows)
		if t.IsLarge {
			large = "large"
		}
		out = append(out, []string{progress.Ident(t.Schema, t.Table), progress.Escape(t.StateText()),
			progress.Count(float64(t.RowsCopied)) + " / " + est,
			progress.Bytes(t.SourceBytes), fmt.Sprintf("%.1f%%", 100*t.Fraction), large})
	}
	return out
}

// snapshotOf converts a progress row for display; now is the sample time.
func snapshotOf(p *api.InitProgress, now time.Time) progress.Snapshot {
	return progress.Snapshot{
		Time: now, Node: p.Node, Source: p.Source, State: p.State, Phase: p.Phase, Percent: p.Percent,
		TablesTotal: p.TablesTotal, TablesDone: p.TablesDone, CurrentTables: p.CurrentTables, LargeTables: p.LargeTables,
		BytesTotal: p.BytesTotal, BytesDone: p.BytesDone, RowsTotal: p.RowsTotal, RowsDone: p.RowsDone,
		RowsPerSec: p.RowsPerSec, BytesPerSec: p.BytesPerSec, ETASeconds: p.ETASeconds, LagBytes: p.LagBytes,
		StalledSince: p.StalledSince, StartedAt: p.StartedAt, UpdatedAt: p.UpdatedAt, Message: deref(p.Message),
	}
}

// splitList splits a comma-separated flag value, trimming blanks and dropping empty
// items; "" gives nil (the extension's default: everything).
func splitList(s string) []string {
	var out []string
	for _, item := range strings.Split(s, ",") {
		if item = strings.TrimSpace(item); item != "" {
			out = append(out, item)
		}
	}
	return out
}

// followMode is how init --follow shows progress.
type followMode int

const (
	modePlain followMode = iota // a line when the state or the integer percent changes
	modeTTY                     // the bar and the detail line redrawn in place
	modeJSON                    // an NDJSON object every poll
	modeQuiet                   // nothing until the result
)

// chooseMode picks the progress display: --json-progress wins, then --quiet; a terminal
// (not TERM=dumb) gets the redrawn bar, anything else plain lines.
func chooseMode(jsonProgress, quiet, tty bool, termEnv string) followMode {
	switch {
	case jsonProgress:
		return modeJSON
	case quiet:
		return modeQuiet
	case tty && termEnv != "dumb":
		return modeTTY
	}
	return modePlain
}

// useColor reports whether to color the state: only on a terminal, and neither
// --no-color, NO_COLOR (https://no-color.org) nor TERM=dumb.
func useColor(tty, noColor bool, noColorEnv, termEnv string) bool {
	return tty && !noColor && noColorEnv == "" && termEnv != "dumb"
}

// isTerminal reports whether w is a character device (stdout on a terminal).
func isTerminal(w io.Writer) bool {
	f, ok := terminal(w).(*os.File)
	if !ok {
		return false
	}
	st, err := f.Stat()
	return err == nil && st.Mode()&os.ModeCharDevice != 0
}

// termWidth returns a function giving w's terminal width in columns, 0 when unknown.
func termWidth(w io.Writer) func() int {
	f, ok := terminal(w).(*os.File)
	if !ok {
		return func() int { return 0 }
	}
	return func() int {
		cols, _, err := term.GetSize(int(f.Fd()))
		if err != nil {
			return 0
		}
		return cols
	}
}

// initOutcome classifies a node init state for --follow: done stops following, ok is
// success. UNINITIALIZED while following means the init was cancelled.
func initOutcome(state string) (done, ok bool) {
	switch state {
	case api.StateSynchronized:
		return true, true
	case api.StateFailed, api.StateUninitialized, api.StateDiverged:
		return true, false
	}
	return false, false
}

// lineGate decides when plain (not terminal) output prints a line: the first sample,
// then whenever the state or the integer percent changes.
type lineGate struct {
	started bool
	state   string
	percent int
}

func (g *lineGate) changed(state string, percent float64) bool {
	pct := int(percent)
	if g.started && state == g.state && pct == g.percent {
		return false
	}
	g.started, g.state, g.percent = true, state, pct
	return true
}

// errFollowTimeout is the cause of the end of --follow at --timeout.
var errFollowTimeout = errors.New("follow timeout")

// cancelDone reports whether a cancelled init is over: its progress is gone and the
// node is UNINITIALIZED.
func cancelDone(progressGone bool, state string) bool {
	return progressGone && state == api.StateUninitialized
}

// waitCancelled polls until node's init is cancelled, the cancel job fails, or 60s pass.
func waitCancelled(ctx context.Context, env *Env, db api.DB, node string, job int64) error {
	ctx, cancel := context.WithTimeoutCause(ctx, cancelWaitTimeout, errFollowTimeout)
	defer cancel()
	tick := time.NewTicker(pollInterval)
	defer tick.Stop()
	for {
		p, err := api.GetInitProgress(ctx, db, node)
		if err != nil {
			return waitCancelErr(ctx, node, job, err)
		}
		n, err := findNode(ctx, db, node)
		if err != nil {
			return waitCancelErr(ctx, node, job, err)
		}
		if cancelDone(p == nil, n.InitState) {
			fmt.Fprintf(env.Stdout, "%s's init is cancelled; %s is UNINITIALIZED\n", node, node)
			return nil
		}
		j, err := api.GetJob(ctx, db, job)
		if err != nil {
			return waitCancelErr(ctx, node, job, err)
		}
		if j.State == api.JobFailed || j.State == api.JobCancelled {
			return fmt.Errorf("cancel of %s's init: job %d %s after %d attempt(s): %s", node, job, j.State, j.Attempt, deref(j.Error))
		}
		select {
		case <-ctx.Done():
			return waitCancelErr(ctx, node, job, ctx.Err())
		case <-tick.C:
		}
	}
}

func waitCancelErr(ctx context.Context, node string, job int64, err error) error {
	if errors.Is(context.Cause(ctx), errFollowTimeout) {
		return fmt.Errorf("cancel of %s's init not finished after %s; is a sidecar running? (see 'steep-repl job show %d')",
			node, cancelWaitTimeout, job)
	}
	return fmt.Errorf("wait for cancel of %s's init: %w", node, err)
}

// findNode returns the registered node called name.
func findNode(ctx context.Context, db api.DB, name string) (api.Node, error) {
	nodes, err := api.ListNodes(ctx, db)
	if err != nil {
		return api.Node{}, err
	}
	for _, n := range nodes {
		if n.Name == name {
			return n, nil
		}
	}
	return api.Node{}, fmt.Errorf("node %s is not registered (see 'steep-repl node list')", name)
}
