package cli

import (
	"context"
	"flag"
	"log/slog"
	"os"
	"time"

	"github.com/steepdb/steep_repl/internal/dbconn"
	"github.com/steepdb/steep_repl/internal/nodeinit"
)

// holdSnapshotCommand is the process a fast init's job starts to hold its slot's exported
// snapshot, so the snapshot outlives a killed sidecar and a retried job can resume the copy.
func holdSnapshotCommand() command {
	var node string
	var idle time.Duration
	return command{
		name: "hold-snapshot", summary: "(started by the sidecar) create a fast init's slot with an exported snapshot and hold it while the init copies",
		example: "steep-repl hold-snapshot --node node_b --idle 1h --db postgres://localhost/postgres",
		flags: func(fs *flag.FlagSet) {
			fs.StringVar(&node, "node", "", "the node being initialized (this database's local node; required)")
			fs.DurationVar(&idle, "idle", nodeinit.HolderIdle, "let the snapshot go once the init made no progress for this long (it is held however long the copy runs)")
		},
		run: func(ctx context.Context, env *Env, fs *flag.FlagSet, args []string) error {
			if node == "" {
				return usageError{"--node is required"}
			}
			if idle <= 0 {
				return usageError{"--idle must be positive"}
			}
			dsn := *env.db
			if dsn == "" {
				dsn = os.Getenv(nodeinit.HolderDBEnv) // the sidecar passes its connection string here
			}
			conn, err := dbconn.Connect(ctx, dsn, "steep-repl hold-snapshot")
			if err != nil {
				return err
			}
			defer conn.Close(context.Background())
			log := slog.New(slog.NewJSONHandler(env.Stderr, nil)).With("worker", "hold-snapshot")
			return nodeinit.HoldSnapshot(ctx, conn, node, idle, log)
		},
	}
}
