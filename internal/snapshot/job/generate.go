package job

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/steepdb/steep_repl/internal/api"
	"github.com/steepdb/steep_repl/internal/nodeinit"
	"github.com/steepdb/steep_repl/internal/progress"
	"github.com/steepdb/steep_repl/internal/runner"
	"github.com/steepdb/steep_repl/internal/snapshot"
)

// generation is one run of a snapshot.generate job.
type generation struct {
	job   *runner.Job
	pool  *pgxpool.Pool
	s     *api.SnapshotRow
	log   *slog.Logger
	tr    *tracker
	scope []api.ScopeTable
	files map[string]string      // table -> file name
	slot  *nodeinit.ExportedSlot // ours when this run created the slot
	name  string                 // exported snapshot to import
	lsn   string
	root  *snapshot.Root // the sidecar's snapshot root
	dir   *snapshot.Dir  // the snapshot directory, created by this generation
	progs Programs       // where pg_dump is
}

func generate(ctx context.Context, job *runner.Job, root *snapshot.Root, progs Programs, log *slog.Logger) (map[string]any, error) {
	id, s, err := jobSnapshot(ctx, job)
	if err != nil {
		return nil, err
	}
	if s == nil || s.State == "complete" || s.State == "deleting" || s.State == "deleted" || s.State == "cancelled" {
		return map[string]any{"skipped": "the snapshot is no longer to be generated"}, nil
	}
	log = log.With("snapshot_id", id, "job", job.ID, "attempt", job.Attempt)
	g := &generation{job: job, pool: job.DB, s: s, log: log, tr: newTracker(job.DB, log, job.ID, id, "generation"), root: root, progs: progs}
	stop := g.tr.run(ctx)
	res, err := g.run(ctx)
	if g.slot != nil {
		g.slot.Conn.Close(context.Background())
	}
	if err != nil {
		g.tr.step("failed", err.Error())
	} else {
		g.tr.step("done", fmt.Sprintf("snapshot %s complete at LSN %s", id, g.lsn))
	}
	stop()
	if err != nil && finalAttempt(ctx, job, err) {
		g.abandon(ctx, err)
	}
	return res, err
}

func (g *generation) run(ctx context.Context) (map[string]any, error) {
	info, err := api.GetSnapshotServer(ctx, g.pool)
	if err != nil {
		return nil, classify(err)
	}
	g.scope, err = api.SnapshotScope(ctx, g.pool, g.s.Options)
	if err != nil {
		return nil, classify(err)
	}
	if len(g.scope) == 0 {
		return nil, errors.New("no user tables in the snapshot's scope")
	}
	g.files = map[string]string{}
	weights := map[string]int64{}
	var rowsEst int64
	for i, t := range g.scope {
		name := tableKey(t)
		g.files[name] = snapshot.FileName(i+1, t.Schema, t.Table, g.s.Compression)
		weights[name] = max(t.Bytes, 1)
		rowsEst += t.Rows
	}
	g.tr.plan(weights, rowsEst)

	if g.dir, err = g.root.CreateDir(g.s.Path, g.s.ID); err != nil {
		return nil, err
	}
	defer g.dir.Close()
	done, err := g.resumeOrStart(ctx)
	if err != nil {
		return nil, err
	}
	for _, d := range done {
		g.tr.finish(d.Schema+"."+d.Table, true, d.RawBytes, d.FileBytes, d.Rows)
	}
	m, err := g.describe(ctx, info)
	if err != nil {
		return nil, err
	}
	g.tr.step("writing", "")
	if err := g.writeTables(ctx, done); err != nil {
		return nil, err
	}
	return g.complete(ctx, m)
}

// resumeOrStart continues an earlier attempt whose exported snapshot is still importable,
// and otherwise starts afresh with a new slot (saying why when an attempt is lost). It
// returns the tables already written.
func (g *generation) resumeOrStart(ctx context.Context) ([]api.DoneFile, error) {
	if g.s.LSN != nil && g.s.ExportedSnapshot != nil {
		done, err := g.resume(ctx)
		if err == nil {
			return done, nil
		}
		msg := fmt.Sprintf("the exported snapshot of the previous attempt is lost (%v): restarting with a new slot; the files written under it are discarded", err)
		g.log.Warn(msg, "event", "snapshot.restarted", "old_lsn", *g.s.LSN)
		g.tr.reset()
		g.tr.step("restarting", msg)
		if err := api.SnapshotRestart(ctx, g.pool, g.s.ID); err != nil {
			return nil, classify(err)
		}
		_ = api.RecordEvent(ctx, g.pool, g.s.SourceNode, "snapshot.restarted", map[string]any{"snapshot_id": g.s.ID, "reason": err.Error()})
	}
	removed, err := g.dir.Clear()
	if err != nil {
		return nil, err
	}
	if len(removed) > 0 {
		g.log.Info("removed the files of an earlier snapshot in the directory", "event", "snapshot.dir_cleared", "files", len(removed))
	}
	if err := g.dropSlot(ctx); err != nil {
		return nil, err
	}
	if g.s.Subscribable() {
		if err := g.ensurePublication(ctx); err != nil {
			return nil, err
		}
	}
	g.tr.step("creating_slot", "")
	slot, err := createSlot(ctx, g.pool, g.s.SlotName, !g.s.Subscribable())
	if err != nil {
		return nil, classify(err)
	}
	g.slot, g.name, g.lsn = slot, slot.Snapshot, slot.LSN
	files := make([]api.SnapshotFile, 0, len(g.scope))
	for _, t := range g.scope {
		files = append(files, api.SnapshotFile{Schema: t.Schema, Table: t.Table, File: g.files[tableKey(t)], EstBytes: t.Bytes})
	}
	if err := api.SnapshotStarted(ctx, g.pool, g.s.ID, g.lsn, g.name, files); err != nil {
		return nil, classify(err)
	}
	g.log.Info("slot created; snapshot exported", "event", "snapshot.slot_created", "slot", g.s.SlotName, "lsn", g.lsn,
		"tables", len(g.scope), "compression", g.s.Compression, "parallel", g.s.Parallel)
	return nil, nil
}

// resume continues with the recorded exported snapshot when it can still be imported, and
// returns the tables already written under it.
func (g *generation) resume(ctx context.Context) ([]api.DoneFile, error) {
	if err := g.probeSnapshot(ctx, *g.s.ExportedSnapshot); err != nil {
		return nil, err
	}
	done, err := api.SnapshotTablesDone(ctx, g.pool, g.s.ID)
	if err != nil {
		return nil, err
	}
	g.name, g.lsn = *g.s.ExportedSnapshot, *g.s.LSN
	g.log.Info("resuming: the exported snapshot is still held", "event", "snapshot.resumed", "lsn", g.lsn, "tables_done", len(done))
	g.tr.step("resuming", fmt.Sprintf("resumed at LSN %s with %d table(s) already written", g.lsn, len(done)))
	return done, nil
}

// probeSnapshot checks an exported snapshot can still be imported.
func (g *generation) probeSnapshot(ctx context.Context, name string) error {
	conn, err := connect(ctx, g.pool, "steep-repl snapshot probe")
	if err != nil {
		return err
	}
	defer conn.Close(context.Background())
	if err := importSnapshot(ctx, conn, name); err != nil {
		return err
	}
	return api.EndSnapshot(ctx, conn)
}

// dropSlot drops the snapshot's slot when an earlier attempt left it.
func (g *generation) dropSlot(ctx context.Context) error {
	info, err := api.GetSlot(ctx, g.pool, g.s.SlotName)
	if err != nil {
		return classify(err)
	}
	if !info.Exists {
		return nil
	}
	if info.Active {
		return runner.Retryable(fmt.Errorf("slot %s of an earlier attempt is still in use", g.s.SlotName))
	}
	if err := api.DropSlot(ctx, g.pool, g.s.SlotName); err != nil && api.SQLState(err) != "42704" {
		return classify(err)
	}
	g.log.Info("dropped the slot of an earlier attempt", "event", "snapshot.slot_dropped", "slot", g.s.SlotName)
	return nil
}

// ensurePublication makes the snapshot's publication publish its scope, before its slot is
// created: a change is decoded with the catalogs as of its LSN, so a publication created
// after the slot would miss the changes in between.
func (g *generation) ensurePublication(ctx context.Context) error {
	tables := make([]api.TableName, len(g.scope))
	for i, t := range g.scope {
		tables[i] = api.TableName{Schema: t.Schema, Table: t.Table}
	}
	created, err := nodeinit.EnsurePublication(ctx, g.pool, g.s.Publication, tables)
	if err != nil {
		return classify(err)
	}
	if created {
		g.log.Info("publication created", "event", "snapshot.publication_created", "publication", g.s.Publication)
	}
	return nil
}

// abandon ends a generation for good (failed or cancelled): partial files, the slot and the
// publication go; complete table files of a failed run stay for diagnosis until delete.
func (g *generation) abandon(ctx context.Context, cause error) {
	cctx, cancel := cleanupContext()
	defer cancel()
	state := "failed"
	if errors.Is(context.Cause(ctx), runner.ErrCancelRequested) {
		state = "cancelled"
	}
	if err := g.dropSlot(cctx); err != nil {
		g.log.Warn("could not drop the slot", "event", "snapshot.cleanup_failed", "error", err.Error())
	}
	if g.s.Subscribable() {
		if err := api.DropPublication(cctx, g.pool, g.s.Publication); err != nil {
			g.log.Warn("could not drop the publication", "event", "snapshot.cleanup_failed", "error", err.Error())
		}
	}
	if err := api.SnapshotFinished(cctx, g.pool, g.s.ID, state, cause.Error()); err != nil {
		g.log.Error("could not record the end of the snapshot", "event", "snapshot.record_failed", "error", err.Error())
	}
	g.log.Warn("snapshot generation "+state, "event", "snapshot."+state, "error", cause.Error())
}

// complete writes the manifest (last, atomically) and records the snapshot as complete.
func (g *generation) complete(ctx context.Context, m *snapshot.Manifest) (map[string]any, error) {
	done, err := api.SnapshotTablesDone(ctx, g.pool, g.s.ID)
	if err != nil {
		return nil, classify(err)
	}
	byName := map[string]api.DoneFile{}
	for _, d := range done {
		byName[progress.Ident(d.Schema, d.Table)] = d
	}
	var rows, raw, file int64
	for i := range m.Tables {
		t := &m.Tables[i]
		d, ok := byName[t.QualifiedName()]
		if !ok {
			return nil, fmt.Errorf("table %s has no complete file", t.QualifiedName())
		}
		t.Rows, t.RawBytes, t.FileBytes, t.SHA256 = d.Rows, d.RawBytes, d.FileBytes, d.SHA256
		rows, raw, file = rows+d.Rows, raw+d.RawBytes, file+d.FileBytes
	}
	g.tr.step("manifest", "")
	m.CompletedAt = time.Now().UTC()
	// COMPLETE commits only once the manifest is on disk: an apply started the moment the
	// snapshot shows complete must find it. The manifest carries the expiry the completion sets.
	tx, err := g.pool.Begin(ctx)
	if err != nil {
		return nil, classify(err)
	}
	defer tx.Rollback(context.Background())
	expires, err := api.SnapshotComplete(ctx, tx, g.s.ID, len(m.Tables), rows, raw, file, g.s.Subscribable())
	if err != nil {
		return nil, classify(err)
	}
	m.SlotExpiresAt = expires
	if err := g.dir.WriteManifest(m); err != nil {
		return nil, err
	}
	if err := tx.Commit(ctx); err != nil {
		return nil, classify(err)
	}
	if expires != nil {
		if _, err := api.EnqueueJobAt(ctx, g.pool, "snapshot.expire", map[string]any{"snapshot_id": g.s.ID},
			g.s.SourceNode, 5, *expires); err != nil {
			g.log.Warn("could not schedule the slot's expiry", "event", "snapshot.expiry_not_scheduled", "error", err.Error())
		}
	}
	_ = api.RecordEvent(ctx, g.pool, g.s.SourceNode, "snapshot.complete", map[string]any{"snapshot_id": g.s.ID, "lsn": g.lsn,
		"tables": len(m.Tables), "rows": rows, "bytes_raw": raw, "bytes_compressed": file})
	g.log.Info("snapshot complete", "event", "snapshot.complete", "lsn", g.lsn, "tables", len(m.Tables), "rows", rows,
		"bytes_raw", raw, "bytes_compressed", file, "path", g.s.Path)
	return map[string]any{"snapshot_id": g.s.ID, "lsn": g.lsn, "tables": len(m.Tables), "rows": rows,
		"bytes_raw": raw, "bytes_compressed": file, "path": g.s.Path}, nil
}

// tableKey names a table in the generation's maps and progress: quoted as format('%I.%I') does,
// so "we.ird".t and we."ird.t" are two tables, not one file.
func tableKey(t api.ScopeTable) string { return progress.Ident(t.Schema, t.Table) }
