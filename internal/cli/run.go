package cli

import (
	"context"
	"flag"
	"log/slog"
	"maps"
	"os"
	"slices"
	"time"

	"github.com/steepdb/steep_repl/internal/nodeinit"
	"github.com/steepdb/steep_repl/internal/runner"
	"github.com/steepdb/steep_repl/internal/snapshot"
	snapshotjob "github.com/steepdb/steep_repl/internal/snapshot/job"
)

func runCommand() command {
	var worker, level, snapRoot, pgBinDir string
	var lease, poll, grace, holderIdle time.Duration
	var concurrency, control int
	var limits timeLimits
	return command{
		name:    "run",
		summary: "run the sidecar daemon: claim and run this node's jobs (JSON logs on stderr)",
		example: "steep-repl run --db 'postgres://steep@localhost/postgres' --concurrency 4",
		flags: func(fs *flag.FlagSet) {
			fs.StringVar(&worker, "worker", "", "name of this sidecar in job leases (default host:pid)")
			fs.DurationVar(&lease, "lease", 30*time.Second, "job lease; the sidecar heartbeats every lease/3")
			fs.DurationVar(&poll, "poll", 2*time.Second, "fallback poll interval when no NOTIFY arrives")
			fs.DurationVar(&grace, "shutdown-grace", 10*time.Second, "on SIGTERM, time running jobs get before they are released")
			fs.IntVar(&concurrency, "concurrency", 2, "jobs run at once")
			fs.DurationVar(&holderIdle, "snapshot-holder-idle", nodeinit.HolderIdle, "a fast init's exported snapshot is held however long its copy runs, and let go after this long without progress "+
				"(a sidecar killed and not restarted); a job retried later starts the copy over")
			fs.IntVar(&control, "control-concurrency", 1, controlHelp)
			fs.Var(&limits, "job-time-limit", timeLimitsHelp)
			fs.StringVar(&level, "log-level", "info", "debug, info, warn or error")
			fs.StringVar(&pgBinDir, "pg-bindir", os.Getenv("STEEP_REPL_PG_BINDIR"), "directory of PostgreSQL's pg_dump and pg_restore, of the server's major or newer "+
				"(snapshots take and restore the schema with them; env STEEP_REPL_PG_BINDIR); unset: the PATH, else pg_config --bindir")
			fs.StringVar(&snapRoot, "snapshot-root", os.Getenv("STEEP_REPL_SNAPSHOT_ROOT"),
				"directory every snapshot directory must be beneath, set like the extension's steep_repl.snapshot_root "+
					"(env STEEP_REPL_SNAPSHOT_ROOT); unset: any absolute directory, still created 0700 and resolved without symlinks below its parent")
		},
		run: func(ctx context.Context, env *Env, fs *flag.FlagSet, args []string) error {
			if len(args) > 0 {
				return usageError{"run takes no arguments"}
			}
			var lvl slog.Level
			if err := lvl.UnmarshalText([]byte(level)); err != nil {
				return usageError{"invalid --log-level " + level}
			}
			logger := slog.New(slog.NewJSONHandler(env.Stderr, &slog.HandlerOptions{Level: lvl}))
			root, err := snapshot.OpenRoot(snapRoot)
			if err != nil {
				return usageError{"--snapshot-root: " + err.Error()}
			}
			defer root.Close()
			if root.Path() == "" {
				logger.Warn("no --snapshot-root: snapshot directories may be anywhere (the extension lets only a superuser name one without steep_repl.snapshot_root)",
					"event", "sidecar.snapshot_root")
			} else {
				logger.Info("snapshot directories must be beneath the snapshot root", "event", "sidecar.snapshot_root", "root", root.Path())
			}
			slots, err := controlSlots(control)
			if err != nil {
				return err
			}
			handlers := sidecarHandlers(nodeinit.Config{ConnString: *env.db, Log: logger, HolderIdle: holderIdle}, root, snapshotjob.Programs{BinDir: pgBinDir})
			r, err := runner.New(runner.Config{
				ConnString: *env.db, Worker: worker, Lease: lease, PollInterval: poll,
				Concurrency: concurrency, ShutdownGrace: grace, Handlers: handlers, Logger: logger,
				ControlConcurrency: slots, TimeLimit: limits.all, TimeLimits: limits.byKind,
			})
			if err != nil {
				return usageError{err.Error()}
			}
			return r.Run(ctx)
		},
	}
}

// sidecarHandlers are the job handlers of the sidecar, by job kind.
func sidecarHandlers(cfg nodeinit.Config, root *snapshot.Root, progs snapshotjob.Programs) map[string]runner.Handler {
	handlers := runner.BuiltinHandlers()
	cfg.Snapshots = snapshotjob.TwoPhase(root, progs)
	maps.Copy(handlers, nodeinit.Handlers(cfg))
	maps.Copy(handlers, snapshotjob.Handlers(cfg.Log, root, progs))
	return handlers
}

// jobKinds are the job kinds a sidecar runs (its handlers' names), sorted.
func jobKinds() []string {
	return slices.Sorted(maps.Keys(sidecarHandlers(nodeinit.Config{Log: slog.New(slog.DiscardHandler)}, nil, snapshotjob.Programs{})))
}
