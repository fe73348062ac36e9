package cli

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"time"

	"github.com/steepdb/steep_repl/internal/api"
)

func manualInitCommands() []command {
	return []command{initPrepareCommand(), initCompleteCommand(), initReleaseCommand()}
}

func initPrepareCommand() command {
	var node, slot string
	var expires, hold time.Duration
	var export bool
	return command{
		name: "init prepare", summary: "on the source: a slot (and its LSN) to seed --node from a backup (manual init)",
		example: "steep-repl init prepare --node node_b --db postgres://10.0.0.1/postgres --expires 48h",
		flags: func(fs *flag.FlagSet) {
			fs.StringVar(&node, "node", "", "the node that will be seeded (required)")
			fs.StringVar(&slot, "slot", "", "slot name (default sr_<source>_<node>)")
			fs.DurationVar(&expires, "expires", 7*24*time.Hour, "drop the slot if unused after this long (it holds WAL)")
			fs.BoolVar(&export, "export", false, "for a logical dump: the sidecar creates the slot with an exported snapshot and holds it for pg_dump --snapshot")
			fs.DurationVar(&hold, "hold", 12*time.Hour, "with --export: how long the snapshot is held at most (init release ends it)")
		},
		run: func(ctx context.Context, env *Env, fs *flag.FlagSet, args []string) error {
			if node == "" || len(args) > 0 {
				return usageError{"need --node"}
			}
			return withConn(ctx, env, func(db api.DB) error {
				if !export {
					p, err := api.PrepareInit(ctx, db, node, slot, expires)
					if err != nil {
						return err
					}
					fmt.Fprintf(env.Stdout, "slot %s, LSN %s, publication %s, expires %s\n\n%s\n", p.Slot, p.LSN, p.Publication,
						p.ExpiresAt.Local().Format(time.DateTime), p.NextSteps)
					return nil
				}
				return prepareExport(ctx, env, db, node, slot, expires, hold)
			})
		},
	}
}

// prepareExport queues init.export and waits for the sidecar to report the held snapshot.
func prepareExport(ctx context.Context, env *Env, db api.DB, node, slot string, expires, hold time.Duration) error {
	job, err := api.PrepareInitExport(ctx, db, node, slot, expires, hold)
	if err != nil {
		return err
	}
	if slot == "" {
		j, err := api.GetJob(ctx, db, job)
		if err != nil {
			return err
		}
		slot, _ = j.Args["slot"].(string)
	}
	deadline := time.Now().Add(time.Minute)
	for {
		lsn, snap, err := api.ExportedSnapshot(ctx, db, slot)
		if err != nil {
			return err
		}
		if snap != "" {
			fmt.Fprintf(env.Stdout, "slot %s, LSN %s, exported snapshot %s (held by the sidecar, job %d)\n\n", slot, lsn, snap, job)
			fmt.Fprintf(env.Stdout, "1. dump with it:      pg_dump --snapshot=%s ... | restore into %s\n", snap, node)
			fmt.Fprintf(env.Stdout, "2. release it:       steep-repl init release --slot %s\n", slot)
			fmt.Fprintf(env.Stdout, "3. on %s:  steep-repl init complete --node %s --source <this node> --slot %s --source-lsn %s\n", node, node, slot, lsn)
			return nil
		}
		j, err := api.GetJob(ctx, db, job)
		if err != nil {
			return err
		}
		if j.State == api.JobFailed || j.State == api.JobCancelled {
			return fmt.Errorf("init.export job %d %s: %s", job, j.State, deref(j.Error))
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("no sidecar created the slot within a minute (job %d is %s): is steep-repl run running on this node?", job, j.State)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(200 * time.Millisecond):
		}
	}
}

func initCompleteCommand() command {
	var node, source, slot, lsn string
	return command{
		name: "init complete", summary: "on the seeded target: subscribe from the backup's end LSN (manual init)",
		example: "steep-repl init complete --node node_b --source node_a --slot sr_node_a_node_b --db postgres://10.0.0.2/postgres",
		flags: func(fs *flag.FlagSet) {
			fs.StringVar(&node, "node", "", "this node, the one seeded from the backup (required)")
			fs.StringVar(&source, "source", "", "the node the backup came from (required)")
			fs.StringVar(&slot, "slot", "", "the slot init prepare made (required)")
			fs.StringVar(&lsn, "source-lsn", "", "LSN the data is consistent at (default: read from the promoted copy's timeline history)")
		},
		run: func(ctx context.Context, env *Env, fs *flag.FlagSet, args []string) error {
			if node == "" || source == "" || slot == "" || len(args) > 0 {
				return usageError{"need --node, --source and --slot"}
			}
			return withConn(ctx, env, func(db api.DB) error {
				rep, err := api.CompleteInit(ctx, db, node, source, slot, lsn, nil)
				if err != nil {
					return err
				}
				b, _ := json.Marshal(rep)
				fmt.Fprintf(env.Stdout, "%s is CATCHING_UP from %s: %s\nwatch it: steep-repl init status %s --follow\n", node, source, b, node)
				return nil
			})
		},
	}
}

func initReleaseCommand() command {
	var slot string
	return command{
		name: "init release", summary: "end the hold of a slot's exported snapshot (after pg_dump --snapshot finished)",
		example: "steep-repl init release --slot sr_node_a_node_b --db postgres://10.0.0.1/postgres",
		flags: func(fs *flag.FlagSet) {
			fs.StringVar(&slot, "slot", "", "the slot (required)")
		},
		run: func(ctx context.Context, env *Env, fs *flag.FlagSet, args []string) error {
			if slot == "" || len(args) > 0 {
				return usageError{"need --slot"}
			}
			return withConn(ctx, env, func(db api.DB) error {
				ok, err := api.ReleaseInitSnapshot(ctx, db, slot)
				if err != nil {
					return err
				}
				if ok {
					fmt.Fprintf(env.Stdout, "snapshot of slot %s released; the slot stays for init complete\n", slot)
				} else {
					fmt.Fprintf(env.Stdout, "the snapshot of slot %s was not held\n", slot)
				}
				return nil
			})
		},
	}
}
