package job

import (
	"context"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/jackc/pgx/v5"
	"golang.org/x/sync/errgroup"

	"github.com/steepdb/steep_repl/internal/api"
	"github.com/steepdb/steep_repl/internal/snapshot"
)

// refusal is a table the apply will not load (a bad checksum, too many bad rows): the
// others go on, and the apply fails at the end naming every refused table.
type refusal struct{ msg string }

func (r refusal) Error() string { return r.msg }

// loadAll loads pending tables with up to parallel workers in foreign-key-safe order
// (parents first among the tables that exist here with their constraints; into a restored
// schema the foreign keys come with post-data, after every table is loaded).
func (ap *application) loadAll(ctx context.Context, pending []snapshot.Table) error {
	if len(pending) == 0 {
		return nil
	}
	byName := map[string]snapshot.Table{}
	weights := map[string]int64{}
	for _, t := range pending {
		byName[t.QualifiedName()] = t
		weights[t.QualifiedName()] = t.RawBytes
	}
	fks, err := api.LocalForeignKeys(ctx, ap.pool)
	if err != nil {
		return classify(err)
	}
	plan, err := snapshot.NewPlan(weights, fks)
	if err != nil {
		return err
	}
	workers := min(int(max(ap.a.OptInt("parallel"), 1)), len(pending))
	// The first error (not a refusal: those only skip their table) cancels the other loaders.
	grp, gctx := errgroup.WithContext(ctx)
	for w := 0; w < workers; w++ {
		grp.Go(func() error { return ap.loader(gctx, plan, byName) })
	}
	err = grp.Wait()
	for t, cause := range plan.Blocked() {
		ap.failed = append(ap.failed, fmt.Sprintf("%s not loaded: it references %s, which was refused", t, cause))
	}
	if err != nil {
		return classify(err)
	}
	return context.Cause(ctx)
}

// loader loads tables as the plan hands them out, on its own connection, until the plan is
// done; a refused table is recorded and its dependants blocked, any other error stops the plan.
func (ap *application) loader(ctx context.Context, plan *snapshot.Plan, byName map[string]snapshot.Table) error {
	conn, err := connect(ctx, ap.pool, "steep-repl snapshot loader")
	if err != nil {
		plan.Stop()
		return err
	}
	defer conn.Close(context.Background())
	for {
		name, ok := plan.Next()
		if !ok {
			return nil
		}
		err := ap.loadTable(ctx, conn, byName[name])
		var ref refusal
		switch {
		case err == nil:
			plan.Done(name, true)
		case errors.As(err, &ref):
			ap.mu.Lock()
			ap.failed = append(ap.failed, ref.msg)
			ap.mu.Unlock()
			plan.Done(name, false)
		default:
			plan.Stop()
			plan.Done(name, false)
			return err
		}
	}
}

// loadTable loads one table in its own transaction: refuse a non-empty table (or empty it
// with truncate), stream the file through SHA-256 and the decompressor into COPY FROM,
// compare checksum and rows, record it, commit. Any mismatch rolls everything of the table
// back. Into a restored schema its indexes and constraints come later, with post-data.
func (ap *application) loadTable(ctx context.Context, conn *pgx.Conn, t snapshot.Table) (err error) {
	name := t.QualifiedName()
	started := time.Now()
	create := ap.restore
	tx, err := conn.Begin(ctx)
	if err != nil {
		return err
	}
	defer func() {
		if err != nil {
			tx.Rollback(context.Background())
		}
	}()
	if ap.a.OptBool("truncate") {
		if err := api.TruncateTable(ctx, tx, t.Schema, t.Name); err != nil {
			return fmt.Errorf("truncate %s: %w", name, err)
		}
	} else {
		has, err := api.TableHasRows(ctx, tx, t.Schema, t.Name)
		if err != nil {
			return fmt.Errorf("check %s is empty: %w", name, err)
		}
		if has {
			return refusal{fmt.Sprintf("%s already holds rows (apply with truncate to replace them)", name)}
		}
	}
	fr, err := ap.dir.OpenTable(t, ap.m.Compression)
	if err != nil {
		return refusal{fmt.Sprintf("%s: %v", name, err)}
	}
	live := ap.tr.start(name)
	tol := ap.a.OptInt("error_tolerance")
	var src io.Reader = countingReader{r: fr, c: live}
	if rate := ap.a.OptInt("max_rate"); rate > 0 {
		src = throttledReader{r: src, t: newThrottle(ctx, rate)}
	}
	loaded, copyErr := api.CopyIn(ctx, conn, src, t.Schema, t.Name, t.Columns, tol, ap.version)
	size, sum, finErr := fr.Finish()
	switch {
	case finErr != nil:
		ap.tr.finish(name, false, 0, 0, 0)
		return refusal{fmt.Sprintf("%s: %v", name, finErr)}
	case sum != t.SHA256 || size != t.FileBytes:
		ap.tr.finish(name, false, 0, 0, 0)
		ap.tr.count(0, 1, 0)
		// Neither the file's actual SHA-256 nor its size is told: they would describe whatever
		// the file turned out to be, which need not be the snapshot's.
		ap.log.Warn("checksum mismatch: table refused", "event", "snapshot.checksum_failed", "table", name, "file", t.File)
		return refusal{fmt.Sprintf("%s: checksum mismatch: file %s failed verification (its size or SHA-256 is not the manifest's)", name, t.File)}
	case copyErr != nil && ctx.Err() == nil && !transient(copyErr):
		ap.tr.finish(name, false, 0, 0, 0)
		ap.tr.count(1, 0, 0)
		return refusal{fmt.Sprintf("%s: %v", name, copyErr)}
	case copyErr != nil:
		ap.tr.finish(name, false, 0, 0, 0)
		return copyErr
	}
	skipped := t.Rows - loaded
	if skipped < 0 || skipped > tol {
		ap.tr.finish(name, false, 0, 0, 0)
		ap.tr.count(1, 0, 0)
		return refusal{fmt.Sprintf("%s: %d rows loaded, the manifest has %d (tolerance %d)", name, loaded, t.Rows, tol)}
	}
	if err := api.RecordTableLoaded(ctx, tx, ap.a.ID, t.Schema, t.Name, loaded, skipped, t.RawBytes, sum, create); err != nil {
		ap.tr.finish(name, false, 0, 0, 0)
		return err
	}
	if err := tx.Commit(ctx); err != nil {
		ap.tr.finish(name, false, 0, 0, 0)
		return fmt.Errorf("commit %s: %w", name, err)
	}
	ap.tr.finish(name, true, t.RawBytes, t.FileBytes, loaded)
	ap.tr.count(1, 0, skipped)
	ap.log.Info("table loaded", "event", "snapshot.table_complete", "table", name, "rows", loaded,
		"tuples_skipped", skipped, "bytes_raw", t.RawBytes, "created", create,
		"seconds", fmt.Sprintf("%.2f", time.Since(started).Seconds()))
	return nil
}
