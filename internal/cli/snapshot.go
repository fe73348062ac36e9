package cli

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/steepdb/steep_repl/internal/api"
	"github.com/steepdb/steep_repl/internal/progress"
)

func snapshotCommands() []command {
	return []command{snapshotGenerateCommand(), snapshotApplyCommand(), snapshotListCommand(), snapshotDeleteCommand()}
}

// displayFlags are the progress flags of generate and apply.
type displayFlags struct{ jsonProgress, quiet, noColor bool }

func (d *displayFlags) register(fs *flag.FlagSet) {
	fs.BoolVar(&d.jsonProgress, "json-progress", false, "one NDJSON progress object per line on stdout every 500ms (other messages go to stderr)")
	fs.BoolVar(&d.quiet, "quiet", false, "print only errors and the final summary")
	fs.BoolVar(&d.noColor, "no-color", false, "no ANSI colors (also off when NO_COLOR is set or stdout is not a terminal)")
}

func snapshotGenerateCommand() command {
	var output, compression, tables, schemas string
	var parallel int
	var slotExpiry time.Duration
	var maxRate int64
	var d displayFlags
	return command{
		name: "snapshot generate", summary: "write a consistent snapshot of the --db node into --output DIR (on the node's host) and wait for it",
		example: "steep-repl snapshot generate --db postgres://10.0.0.1/postgres --output /srv/snap/2026-11-25 --compression zstd --parallel 4",
		flags: func(fs *flag.FlagSet) {
			fs.StringVar(&output, "output", "", "directory on the node's host, empty or new (required; a relative path is made absolute here)")
			fs.StringVar(&compression, "compression", "zstd", "zstd, lz4, gzip or none")
			fs.IntVar(&parallel, "parallel", 4, "tables written at once, 1-16")
			fs.StringVar(&tables, "tables", "", "only these tables, comma-separated: schema.table, or table for public (default: all)")
			fs.StringVar(&schemas, "schemas", "", "only tables of these schemas, comma-separated (default: all)")
			fs.DurationVar(&slotExpiry, "slot-expiry", 24*time.Hour, "how long the snapshot's slot is kept for subscribers (it holds WAL meanwhile)")
			fs.Int64Var(&maxRate, "max-rate", 0, "cap each worker's COPY stream at this many bytes per second (0: no cap)")
			d.register(fs)
		},
		run: func(ctx context.Context, env *Env, fs *flag.FlagSet, args []string) error {
			if len(args) != 0 || output == "" {
				return usageError{"need --output DIR"}
			}
			if parallel < 1 || parallel > 16 {
				return usageError{"--parallel must be between 1 and 16"}
			}
			dir, err := filepath.Abs(output)
			if err != nil {
				return usageError{"--output: " + err.Error()}
			}
			opts := api.SnapshotOptions{Compression: compression, Parallel: parallel, Tables: splitList(tables),
				Schemas: splitList(schemas), SlotExpiry: int64(slotExpiry.Seconds()), MaxRate: maxRate}
			return withConn(ctx, env, func(db api.DB) error {
				id, err := api.GenerateSnapshot(ctx, db, dir, opts)
				if err != nil {
					return err
				}
				job, err := api.SnapshotJobOf(ctx, db, id)
				if err != nil {
					return err
				}
				w := newWatcher(env, d)
				if !d.quiet {
					fmt.Fprintf(w.human, "snapshot %s: generating into %s (job %d)\n", id, dir, job)
				}
				return w.follow(ctx, db, job)
			})
		},
	}
}

func snapshotApplyCommand() command {
	var input string
	var parallel int
	var tolerance, maxRate int64
	var subscribe, truncate bool
	var d displayFlags
	return command{
		name: "snapshot apply", summary: "load the snapshot in --input DIR (on the node's host) into the --db node and wait for it; --subscribe then replicates from its LSN",
		example: "steep-repl snapshot apply --db postgres://10.0.0.2/postgres --input /srv/snap/2026-11-25 --parallel 4 --subscribe",
		flags: func(fs *flag.FlagSet) {
			fs.StringVar(&input, "input", "", "snapshot directory on the node's host (required; a relative path is made absolute here)")
			fs.IntVar(&parallel, "parallel", 4, "tables loaded at once, 1-16")
			fs.BoolVar(&subscribe, "subscribe", false, "subscribe to the source from the snapshot's LSN (the node goes CATCHING_UP, then SYNCHRONIZED)")
			fs.Int64Var(&tolerance, "error-tolerance", 0, "malformed rows skipped per table before it fails (PostgreSQL 17+; 0: fail on the first)")
			fs.BoolVar(&truncate, "truncate", false, "empty existing tables that hold rows instead of refusing them")
			fs.Int64Var(&maxRate, "max-rate", 0, "cap each worker's COPY stream at this many bytes per second (0: no cap)")
			d.register(fs)
		},
		run: func(ctx context.Context, env *Env, fs *flag.FlagSet, args []string) error {
			if len(args) != 0 || input == "" {
				return usageError{"need --input DIR"}
			}
			if parallel < 1 || parallel > 16 {
				return usageError{"--parallel must be between 1 and 16"}
			}
			if tolerance < 0 {
				return usageError{"--error-tolerance must not be negative"}
			}
			dir, err := filepath.Abs(input)
			if err != nil {
				return usageError{"--input: " + err.Error()}
			}
			if maxRate < 0 {
				return usageError{"--max-rate must not be negative"}
			}
			opts := api.ApplyOptions{Parallel: parallel, Subscribe: subscribe, ErrorTolerance: tolerance, Truncate: truncate, MaxRate: maxRate}
			return withConn(ctx, env, func(db api.DB) error {
				job, err := api.ApplySnapshot(ctx, db, dir, opts)
				if err != nil {
					return err
				}
				w := newWatcher(env, d)
				if !d.quiet {
					fmt.Fprintf(w.human, "applying the snapshot in %s (job %d)\n", dir, job)
				}
				return w.follow(ctx, db, job)
			})
		},
	}
}

func snapshotListCommand() command {
	var asJSON bool
	return command{
		name: "snapshot list", summary: "list the snapshots generated on and applied to the --db node",
		example: "steep-repl snapshot list --db postgres://10.0.0.1/postgres",
		flags:   func(fs *flag.FlagSet) { fs.BoolVar(&asJSON, "json", false, "print a JSON array") },
		run: func(ctx context.Context, env *Env, fs *flag.FlagSet, args []string) error {
			return withConn(ctx, env, func(db api.DB) error {
				list, err := api.ListSnapshots(ctx, db)
				if err != nil {
					return err
				}
				if asJSON {
					enc := json.NewEncoder(env.Stdout)
					enc.SetIndent("", "  ")
					return enc.Encode(list)
				}
				return printSnapshots(env.Stdout, list)
			})
		},
	}
}

func snapshotDeleteCommand() command {
	var wait bool
	return command{
		name: "snapshot delete", args: "ID", summary: "delete snapshot ID generated on the --db node: its files, its slot, its publication when unused",
		example: "steep-repl snapshot delete snap_20261125_101500_3fa2c1 --db postgres://10.0.0.1/postgres --wait",
		flags:   func(fs *flag.FlagSet) { fs.BoolVar(&wait, "wait", false, "wait until the sidecar has deleted it") },
		run: func(ctx context.Context, env *Env, fs *flag.FlagSet, args []string) error {
			if len(args) != 1 {
				return usageError{"need a snapshot ID"}
			}
			return withConn(ctx, env, func(db api.DB) error {
				job, err := api.DeleteSnapshot(ctx, db, args[0])
				if err != nil {
					return err
				}
				fmt.Fprintf(env.Stdout, "deletion of snapshot %s queued (job %d)\n", args[0], job)
				if !wait {
					return nil
				}
				return waitJob(ctx, env, db, job)
			})
		},
	}
}

// printSnapshots writes the snapshot list as a table; text cells are escaped here (not only
// on the way out) so that the columns stay aligned.
func printSnapshots(w io.Writer, list []api.SnapshotInfo) error {
	if len(list) == 0 {
		fmt.Fprintln(w, "(no snapshots)")
		return nil
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tROLE\tSTATE\tLSN\tTABLES\tROWS\tRAW\tFILES\tSLOT\tCREATED\tPATH")
	for _, s := range list {
		slot := "--"
		if s.SlotName != nil {
			switch {
			case s.SlotDropped != nil && *s.SlotDropped:
				slot = "dropped"
			case s.SlotExpiresAt != nil:
				slot = "until " + s.SlotExpiresAt.Local().Format(time.DateTime)
			default:
				slot = progress.Escape(*s.SlotName)
			}
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", progress.Escape(orDash(s.ID)), progress.Escape(s.Role),
			progress.Escape(s.State), progress.Escape(orDash(s.LSN)), intOrDash(s.Tables), countOrDash(s.Rows),
			bytesOrDash(s.BytesRaw), bytesOrDash(s.BytesCompressed), slot, s.CreatedAt.Local().Format(time.DateTime),
			progress.Escape(s.Path))
	}
	return tw.Flush()
}

func orDash(s *string) string {
	if s == nil || *s == "" {
		return progress.Unknown
	}
	return *s
}

func intOrDash(n *int) string {
	if n == nil {
		return progress.Unknown
	}
	return fmt.Sprint(*n)
}

func countOrDash(n *int64) string {
	if n == nil {
		return progress.Unknown
	}
	return progress.Count(float64(*n))
}

func bytesOrDash(n *int64) string {
	if n == nil {
		return progress.Unknown
	}
	return progress.Bytes(*n)
}

// queuedWarning is how long a job may wait for a sidecar before follow says so.
const queuedWarning = 15 * time.Second

// watcher follows a snapshot job until it is finished, showing its progress.
type watcher struct {
	mode       followMode
	color      bool
	out, human io.Writer
	width      func() int
}

func newWatcher(env *Env, d displayFlags) *watcher {
	tty := isTerminal(env.Stdout)
	w := &watcher{mode: chooseMode(d.jsonProgress, d.quiet, tty, os.Getenv("TERM")),
		color: useColor(tty, d.noColor, os.Getenv("NO_COLOR"), os.Getenv("TERM")),
		out:   env.Stdout, human: env.Stdout, width: termWidth(env.Stdout)}
	if d.jsonProgress {
		w.human = env.Stderr
	}
	return w
}

// follow polls job and its progress every 500ms until the job is finished; a job that did
// not succeed is an error (exit 1).
func (w *watcher) follow(ctx context.Context, db api.DB, jobID int64) error {
	var paint progress.Painter
	defer func() { fmt.Fprint(w.out, paint.End()) }()
	var gate lineGate
	tick := time.NewTicker(pollInterval)
	defer tick.Stop()
	started, warned := time.Now(), false
	for {
		job, err := api.GetJob(ctx, db, jobID)
		if err != nil {
			return err
		}
		if job.State == api.JobQueued && job.Attempt == 0 && !warned && time.Since(started) > queuedWarning {
			fmt.Fprintf(w.human, "job %d is still queued after %s: is a sidecar ('steep-repl run') running for this node?\n",
				jobID, queuedWarning)
			warned = true
		}
		p, err := api.GetSnapshotProgress(ctx, db, jobID)
		if err != nil {
			return err
		}
		if p != nil {
			switch w.mode {
			case modeJSON:
				b, err := snapshotJSON(*p, job.State, time.Now())
				if err != nil {
					return err
				}
				fmt.Fprintf(w.out, "%s\n", b)
			case modeTTY:
				fmt.Fprint(terminal(w.out), paint.Frame(snapshotLine(*p, w.color), snapshotDetail(*p), w.width()))
			case modePlain:
				if gate.changed(p.Phase+" "+p.Step, p.Percent) {
					fmt.Fprintln(w.out, snapshotLine(*p, false))
				}
			}
		}
		switch job.State {
		case api.JobSucceeded:
			fmt.Fprint(w.out, paint.End())
			fmt.Fprintln(w.human, snapshotSummary(job, p))
			return nil
		case api.JobFailed, api.JobCancelled:
			fmt.Fprint(w.out, paint.End())
			return fmt.Errorf("job %d %s after %d attempt(s): %s", job.ID, job.State, job.Attempt, deref(job.Error))
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("stopped following job %d; it goes on (see 'steep-repl job show %d')", jobID, jobID)
		case <-tick.C:
		}
	}
}

// snapshotLine is the status line (progress.Line): bar, percent, bytes, throughput, ETA,
// phase, step and tables.
func snapshotLine(p api.SnapshotProgress, color bool) string {
	return progress.Line(snapshotSample(p), color)
}

// snapshotSample is a snapshot job's progress row as package progress draws it.
func snapshotSample(p api.SnapshotProgress) progress.Snapshot {
	return progress.Snapshot{
		Time: p.UpdatedAt, Phase: p.Phase, Step: p.Step, Percent: p.Percent,
		TablesTotal: p.TablesTotal, TablesDone: p.TablesDone,
		BytesTotal: p.BytesTotal, BytesDone: p.BytesDone, RowsTotal: p.RowsTotal, RowsDone: p.RowsDone,
		BytesPerSec: p.ThroughputBytesS, NoRowsRate: true, ETASeconds: p.ETASeconds,
		StartedAt: p.StartedAt, UpdatedAt: p.UpdatedAt,
	}
}

// snapshotDetail is the second line: the tables being worked on, or the step's message, and
// the compression ratio, checksums and skipped rows once there are any; the server's text
// is escaped (the line may go to the terminal unfiltered, see terminal).
func snapshotDetail(p api.SnapshotProgress) string {
	var parts []string
	switch {
	case p.CurrentTable != nil && *p.CurrentTable != "":
		verb := "writing "
		if p.Phase == "application" {
			verb = "loading "
		}
		parts = append(parts, verb+progress.Escape(*p.CurrentTable))
	case p.Message != nil:
		parts = append(parts, progress.Escape(strings.Join(strings.Fields(*p.Message), " ")))
	}
	if p.CompressionRatio != nil {
		parts = append(parts, fmt.Sprintf("compression %.1fx", *p.CompressionRatio))
	}
	if p.ChecksumsVerified+p.ChecksumsFailed > 0 {
		parts = append(parts, fmt.Sprintf("checksums %d ok, %d failed", p.ChecksumsVerified, p.ChecksumsFailed))
	}
	if p.TuplesSkipped > 0 {
		parts = append(parts, fmt.Sprintf("%d malformed rows skipped", p.TuplesSkipped))
	}
	return strings.Join(parts, " | ")
}

// snapshotJSON is one --json-progress line.
func snapshotJSON(p api.SnapshotProgress, jobState string, now time.Time) ([]byte, error) {
	rec := map[string]any{
		"time": now.UTC(), "job_id": p.JobID, "job_state": jobState, "snapshot_id": p.SnapshotID,
		"phase": p.Phase, "step": p.Step, "percent": p.Percent,
		"bytes_done": p.BytesDone, "bytes_total": p.BytesTotal, "rows_done": p.RowsDone, "rows_total": p.RowsTotal,
		"tables_done": p.TablesDone, "tables_total": p.TablesTotal,
		"throughput_bytes_s": p.ThroughputBytesS, "eta_s": p.ETASeconds, "current_table": p.CurrentTable,
		"compression_ratio": p.CompressionRatio, "checksums_verified": p.ChecksumsVerified,
		"checksums_failed": p.ChecksumsFailed, "tuples_skipped": p.TuplesSkipped, "message": p.Message,
	}
	b, err := json.Marshal(rec)
	if err != nil {
		return nil, fmt.Errorf("encode progress of job %d: %w", p.JobID, err)
	}
	return b, nil
}

// snapshotSummary is the final line of a succeeded job, from its result.
func snapshotSummary(job api.Job, p *api.SnapshotProgress) string {
	r := job.Result
	num := func(k string) int64 { f, _ := r[k].(float64); return int64(f) }
	str := func(k string) string { s, _ := r[k].(string); return s }
	elapsed := ""
	if job.AttemptedAt != nil && job.FinalizedAt != nil {
		elapsed = ", " + progress.Duration(job.FinalizedAt.Sub(*job.AttemptedAt).Seconds())
	}
	switch job.Kind {
	case "snapshot.generate":
		ratio := ""
		if c := num("bytes_compressed"); c > 0 {
			ratio = fmt.Sprintf(" (%.1fx)", float64(num("bytes_raw"))/float64(c))
		}
		return fmt.Sprintf("snapshot %s complete at LSN %s: %d tables, %s rows, %s -> %s%s in %s%s", str("snapshot_id"),
			str("lsn"), num("tables"), progress.Count(float64(num("rows"))), progress.Bytes(num("bytes_raw")),
			progress.Bytes(num("bytes_compressed")), ratio, str("path"), elapsed)
	default:
		s := fmt.Sprintf("snapshot %s applied (LSN %s): %d tables, %s rows, %d malformed rows skipped%s", str("snapshot_id"),
			str("lsn"), num("tables"), progress.Count(float64(num("rows"))), num("tuples_skipped"), elapsed)
		if sub := str("subscription"); sub != "" {
			s += fmt.Sprintf("; subscription %s streams from the snapshot's LSN (CATCHING_UP, then SYNCHRONIZED: 'steep-repl init status')", sub)
		}
		return s
	}
}
