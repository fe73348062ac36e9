package nodeinit

import (
	"context"
	"fmt"
	"log/slog"

	"github.com/jackc/pgx/v5/pgxpool"
	"golang.org/x/sync/errgroup"

	"github.com/steepdb/steep_repl/internal/api"
)

// restoreObjects re-creates, as each table's owner, the indexes and constraints node's fast init
// dropped: parallel at once, group after group (restoreGroups). Each object is its own
// transaction and is forgotten once re-created, so a restore cut short resumes where it stopped. The sessions that build them run with the
// init's maintenance_work_mem and max_parallel_maintenance_workers. It returns how many it
// re-created.
func restoreObjects(ctx context.Context, db *pgxpool.Pool, node string, parallel int, log *slog.Logger) (int, error) {
	objs, err := api.FastObjects(ctx, db, node)
	if err != nil {
		return 0, err
	}
	settings, err := api.FastIndexSettings(ctx, db, node)
	if err != nil {
		return 0, err
	}
	n := 0
	for _, ids := range restoreGroups(objs) {
		k, err := restoreEach(ctx, db, ids, parallel, settings)
		n += k
		if err != nil {
			return n, err
		}
	}
	return n, nil
}

// restoreGroups splits objs (in FastObjects' order) into the groups re-created one after the
// other: the foreign keys after all the others (they need the unique indexes they reference),
// and within each, a stage after the one below (a partitioned index attaches its partitions'
// indexes, which must exist). The objects of one group do not depend on each other.
func restoreGroups(objs []api.FastObject) [][]int64 {
	var groups [][]int64
	for i, o := range objs {
		if i == 0 || o.ForeignKey != objs[i-1].ForeignKey || o.Stage != objs[i-1].Stage {
			groups = append(groups, nil)
		}
		groups[len(groups)-1] = append(groups[len(groups)-1], o.ID)
	}
	return groups
}

// restoreEach re-creates ids with up to parallel sessions, each set up with settings.
func restoreEach(ctx context.Context, db *pgxpool.Pool, ids []int64, parallel int, settings api.IndexSettings) (int, error) {
	work := make(chan int64, len(ids))
	for _, id := range ids {
		work <- id
	}
	close(work)
	done := make([]int, min(max(parallel, 1), len(ids)))
	grp, gctx := errgroup.WithContext(ctx)
	for w := range done {
		grp.Go(func() error {
			conn, err := db.Acquire(gctx)
			if err != nil {
				return fmt.Errorf("connect to rebuild indexes: %w", err)
			}
			defer conn.Release()
			if err := api.SetIndexSession(gctx, conn, settings); err != nil {
				return err
			}
			for id := range work {
				ok, err := api.FastRestoreObject(gctx, conn, id)
				if err != nil {
					conn.Conn().Close(context.Background()) // its settings must not go back to the pool
					return err
				}
				if ok {
					done[w]++
				}
			}
			if err := api.ResetIndexSession(gctx, conn); err != nil {
				conn.Conn().Close(context.Background())
				return err
			}
			return nil
		})
	}
	err := grp.Wait()
	n := 0
	for _, k := range done {
		n += k
	}
	return n, err
}
