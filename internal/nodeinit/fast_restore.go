package nodeinit

import (
	"context"
	"log/slog"

	"golang.org/x/sync/errgroup"

	"github.com/steepdb/steep_repl/internal/api"
)

// restoreObjects re-creates, as each table's owner, the indexes and constraints node's fast init
// dropped: parallel at once, the foreign keys after all the others (they need the unique
// indexes they reference). Each object is its own transaction and is forgotten once re-created,
// so a restore cut short resumes where it stopped. It returns how many it re-created.
func restoreObjects(ctx context.Context, db api.DB, node string, parallel int, log *slog.Logger) (int, error) {
	objs, err := api.FastObjects(ctx, db, node)
	if err != nil {
		return 0, err
	}
	var first, fks []int64
	for _, o := range objs {
		if o.ForeignKey {
			fks = append(fks, o.ID)
		} else {
			first = append(first, o.ID)
		}
	}
	n := 0
	for _, ids := range [][]int64{first, fks} {
		k, err := restoreEach(ctx, db, ids, parallel)
		n += k
		if err != nil {
			return n, err
		}
	}
	return n, nil
}

func restoreEach(ctx context.Context, db api.DB, ids []int64, parallel int) (int, error) {
	grp, gctx := errgroup.WithContext(ctx)
	grp.SetLimit(max(parallel, 1))
	done := make([]bool, len(ids))
	for i, id := range ids {
		grp.Go(func() error {
			ok, err := api.FastRestoreObject(gctx, db, id)
			done[i] = ok
			return err
		})
	}
	err := grp.Wait()
	n := 0
	for _, ok := range done {
		if ok {
			n++
		}
	}
	return n, err
}
