package job

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/steepdb/steep_repl/internal/api"
	"github.com/steepdb/steep_repl/internal/nodeinit"
	"github.com/steepdb/steep_repl/internal/runner"
	"github.com/steepdb/steep_repl/internal/snapshot"
)

// application is one run of a snapshot apply.
type application struct {
	job     *runner.Job
	pool    *pgxpool.Pool
	a       *api.ApplyRow
	root    *snapshot.Root // the sidecar's snapshot root
	dir     *snapshot.Dir  // the snapshot directory, opened once: every file is read relative to it
	m       *snapshot.Manifest
	log     *slog.Logger
	tr      *tracker
	version int
	progs   Programs // where pg_restore is
	restore bool     // the target had none of the tables: this apply restores the schema
	schema  []byte   // the schema archive, verified (read once, when restore needs it)
	owner   []string // pg_restore's --role and ownership options (ownerArgs, read once)
	// finishes is an earlier apply of the snapshot that restored pre-data and failed before
	// post-data: this one restores post-data in its stead.
	finishes int64

	mu     sync.Mutex
	failed []string // tables refused (checksum, rows), with why
}

func apply(ctx context.Context, job *runner.Job, root *snapshot.Root, progs Programs, log *slog.Logger) (map[string]any, error) {
	id, err := job.ArgInt("apply_id")
	if err != nil {
		return nil, err
	}
	a, err := api.GetApply(ctx, job.DB, id)
	if err != nil {
		return nil, classify(err)
	}
	if a == nil || a.State == "complete" || a.State == "cancelled" {
		return map[string]any{"skipped": "the apply is no longer to be done"}, nil
	}
	log = log.With("apply_id", id, "job", job.ID, "attempt", job.Attempt)
	tr := newTracker(job.DB, log, job.ID, "", "application")
	stop := tr.run(ctx)
	res, err := runApply(ctx, job, a, root, progs, tr, log)
	stop()
	return res, err
}

// runApply applies a.Path; on a final failure it records it (failing a subscribing init).
func runApply(ctx context.Context, job *runner.Job, a *api.ApplyRow, root *snapshot.Root, progs Programs, tr *tracker, log *slog.Logger) (map[string]any, error) {
	ap := &application{job: job, pool: job.DB, a: a, root: root, progs: progs, log: log, tr: tr}
	res, err := ap.run(ctx)
	if err != nil {
		tr.step("failed", err.Error())
		if finalAttempt(ctx, job, err) {
			cctx, cancel := cleanupContext()
			defer cancel()
			var rerr error
			if errors.Is(context.Cause(ctx), runner.ErrCancelRequested) {
				rerr = api.ApplyCancelled(cctx, job.DB, a.ID)
			} else {
				rerr = api.ApplyFailed(cctx, job.DB, a.ID, err.Error())
			}
			if rerr != nil {
				log.Error("could not record the apply's end", "event", "snapshot.record_failed", "error", rerr.Error())
			}
			log.Warn("apply failed", "event", "snapshot.apply_failed", "error", err.Error())
		}
		return nil, err
	}
	tr.step("done", fmt.Sprintf("snapshot %s applied", ap.m.SnapshotID))
	return res, nil
}

func (ap *application) run(ctx context.Context) (_ map[string]any, err error) {
	ap.tr.step("validating", "")
	if ap.dir, err = ap.root.OpenDir(ap.a.Path); err != nil {
		return nil, err
	}
	defer ap.dir.Close()
	m, err := ap.dir.ReadManifest()
	if err != nil {
		return nil, err
	}
	ap.m = m
	ap.tr.setSnapshotID(m.SnapshotID)
	ap.log = ap.log.With("snapshot_id", m.SnapshotID)
	if ap.a.OptBool("subscribe") && m.SlotName == "" {
		return nil, fmt.Errorf("snapshot %s was generated without a slot (subscribable false): apply it without subscribe", m.SnapshotID)
	}
	info, err := api.GetSnapshotServer(ctx, ap.pool)
	if err != nil {
		return nil, classify(err)
	}
	ap.version = info.VersionNum
	if tol := ap.a.OptInt("error_tolerance"); tol > 0 && info.VersionNum < 170000 {
		return nil, fmt.Errorf("error tolerance needs PostgreSQL 17+ (COPY ON_ERROR); this server is %s", info.Version)
	}
	if ap.a.OptBool("subscribe") {
		if err := nodeinit.CheckSnapshotSlot(ctx, ap.pool, m.SourceNode, m.SlotName); err != nil {
			return nil, classify(err)
		}
	}
	if err := api.ApplyLoading(ctx, ap.pool, ap.a.ID, m.SnapshotID, m.SourceNode, m.LSN); err != nil {
		return nil, classify(err)
	}
	pending, err := ap.prepare(ctx)
	if err != nil {
		return nil, err
	}
	ap.tr.step("loading", "")
	if err := ap.loadAll(ctx, pending); err != nil {
		return nil, err
	}
	if len(ap.failed) > 0 {
		slices.Sort(ap.failed)
		return nil, fmt.Errorf("%d table(s) refused, nothing loaded from them: %s", len(ap.failed), strings.Join(ap.failed, "; "))
	}
	if ap.restore {
		// Indexes, constraints, foreign keys, triggers and policies once the data is in.
		if err := ap.restoreSection(ctx, "post-data", nil); err != nil {
			return nil, err
		}
		if err := ap.refreshMatViews(ctx); err != nil {
			return nil, err
		}
		if err := ap.checkFingerprints(ctx); err != nil {
			return nil, err
		}
	}
	ap.tr.step("sequences", "")
	if err := ap.sequences(ctx); err != nil {
		return nil, err
	}
	res := map[string]any{"snapshot_id": m.SnapshotID, "lsn": m.LSN, "tables": len(m.Tables)}
	if ap.a.OptBool("subscribe") {
		ap.tr.step("subscribing", "")
		sub, err := nodeinit.SubscribeFromSnapshot(ctx, ap.pool, nodeinit.SnapshotSubscription{ApplyID: ap.a.ID,
			Source: m.SourceNode, Slot: m.SlotName, Publication: m.Publication, LSN: m.LSN}, ap.log)
		if err != nil {
			return nil, classify(err)
		}
		res["subscription"] = sub
	}
	if err := api.ApplyComplete(ctx, ap.pool, ap.a.ID); err != nil {
		return nil, classify(err)
	}
	loaded, err := api.ApplyLoadedTables(ctx, ap.pool, ap.a.ID)
	if err != nil {
		return nil, classify(err)
	}
	var rows, skipped int64
	for _, t := range loaded {
		rows += t.Rows
		skipped += t.TuplesSkipped
	}
	res["rows"], res["tuples_skipped"] = rows, skipped
	_ = api.RecordEvent(ctx, ap.pool, "", "snapshot.applied", res)
	ap.log.Info("snapshot applied", "event", "snapshot.applied", "tables", len(m.Tables), "rows", rows, "tuples_skipped", skipped)
	return res, nil
}

// prepare decides how the schema gets here: into a target that has none of the snapshot's
// tables it restores the schema archive's pre-data section (types, functions, tables,
// sequences, views: pg_restore), into one that has all of them it checks their columns
// (fingerprints) and loads only the data; a target with some of them is refused. It returns
// the tables still to load.
func (ap *application) prepare(ctx context.Context) ([]snapshot.Table, error) {
	loaded, err := api.ApplyLoadedTables(ctx, ap.pool, ap.a.ID)
	if err != nil {
		return nil, classify(err)
	}
	done := map[string]bool{}
	for _, t := range loaded {
		done[t.Schema+"."+t.Table] = true
	}
	local, err := api.SnapshotScope(ctx, ap.pool, map[string]any{})
	if err != nil {
		return nil, classify(err)
	}
	have := map[string]string{}
	for _, t := range local {
		have[t.Schema+"."+t.Table] = t.Fingerprint
	}
	restored, err := api.ApplyEventRecorded(ctx, ap.pool, ap.a.ID, eventPreData)
	if err != nil {
		return nil, classify(err)
	}
	weights := map[string]int64{}
	var rowsTotal int64
	var pending []snapshot.Table
	var present, missing, diffs []string
	for _, t := range ap.m.Tables {
		name := t.QualifiedName()
		weights[name] = t.RawBytes
		rowsTotal += t.Rows
		fp, exists := have[t.Schema+"."+t.Name]
		switch {
		case !exists:
			missing = append(missing, name)
		case fp != t.Fingerprint:
			present = append(present, name)
			diffs = append(diffs, name)
		default:
			present = append(present, name)
		}
		if !done[t.Schema+"."+t.Name] {
			pending = append(pending, t)
		}
	}
	if len(present) > 0 && len(missing) == 0 && !restored {
		// An earlier apply of this snapshot may have restored pre-data and failed before
		// post-data (its tables lack their primary keys: the fingerprints differ until then).
		if ap.finishes, err = api.ApplyHalfRestored(ctx, ap.pool, ap.m.SnapshotID); err != nil {
			return nil, classify(err)
		}
	}
	switch {
	case len(present) == 0 && len(loaded) > 0:
		return nil, fmt.Errorf("the %d table(s) an earlier attempt of this apply loaded are gone: apply the snapshot again", len(loaded))
	case len(present) == 0:
		ap.restore = true
	case restored && len(missing) == 0: // an earlier attempt restored the schema: go on
		ap.restore = true
	case ap.finishes != 0:
		ap.restore = true
		ap.log.Info("an earlier apply of this snapshot restored the schema's pre-data and failed before post-data: this apply finishes it",
			"event", "snapshot.schema_adopted", "earlier_apply_id", ap.finishes)
	case len(missing) > 0:
		return nil, fmt.Errorf("%d of the snapshot's tables exist here (%s) and %d do not (%s): apply into a database that has none of them "+
			"(the schema is restored with pg_restore) or all of them (only the data is loaded)",
			len(present), strings.Join(cut(present, 5), ", "), len(missing), strings.Join(cut(missing, 5), ", "))
	case len(diffs) > 0:
		return nil, fmt.Errorf("tables whose columns differ from the snapshot's (fingerprint mismatch): %s; make them match or drop them so the apply creates them",
			strings.Join(diffs, ", "))
	}
	ap.tr.plan(weights, rowsTotal)
	for _, t := range loaded {
		for _, mt := range ap.m.Tables {
			if mt.Schema == t.Schema && mt.Name == t.Table {
				ap.tr.finish(mt.QualifiedName(), true, mt.RawBytes, mt.FileBytes, t.Rows)
			}
		}
	}
	if len(loaded) > 0 {
		ap.log.Info("resuming: tables already loaded are skipped", "event", "snapshot.apply_resumed", "tables_loaded", len(loaded))
	}
	if ap.restore && ap.finishes == 0 {
		existing, err := api.ExistingSchemas(ctx, ap.pool, ap.m.Schemas)
		if err != nil {
			return nil, classify(err)
		}
		if err := ap.restoreSection(ctx, "pre-data", existing); err != nil {
			return nil, err
		}
		return pending, nil
	}
	if ap.restore {
		return pending, nil
	}
	// Only the data: the sequences the snapshot carries that are not here yet (IF NOT EXISTS).
	for _, s := range ap.m.Sequences {
		if s.DDL != "" {
			if _, err := ap.pool.Exec(ctx, s.DDL); err != nil {
				return nil, classify(fmt.Errorf("create sequence %s.%s: %w", s.Schema, s.Name, err))
			}
		}
	}
	return pending, nil
}

// checkFingerprints compares, once the schema is restored, every table's fingerprint with the
// snapshot's: pg_restore recreated them, so a difference is a bug or a tampered archive.
func (ap *application) checkFingerprints(ctx context.Context) error {
	local, err := api.SnapshotScope(ctx, ap.pool, map[string]any{})
	if err != nil {
		return classify(err)
	}
	have := map[string]string{}
	for _, t := range local {
		have[t.Schema+"."+t.Table] = t.Fingerprint
	}
	var diffs []string
	for _, t := range ap.m.Tables {
		if have[t.Schema+"."+t.Name] != t.Fingerprint {
			diffs = append(diffs, t.QualifiedName())
		}
	}
	if len(diffs) > 0 {
		return fmt.Errorf("after pg_restore, tables whose columns or primary key differ from the snapshot's (fingerprint mismatch): %s",
			strings.Join(cut(diffs, 10), ", "))
	}
	return nil
}

// cut keeps the first n names of a list, saying how many more there are.
func cut(names []string, n int) []string {
	if len(names) <= n {
		return names
	}
	return append(slices.Clone(names[:n]), fmt.Sprintf("and %d more", len(names)-n))
}

// sequences restores every sequence of the snapshot to its value (the schema archive, when
// restored, created them with their OWNED BY links).
func (ap *application) sequences(ctx context.Context) error {
	for _, s := range ap.m.Sequences {
		if err := api.SetSequence(ctx, ap.pool, api.Identifier(s.Schema, s.Name), s.LastValue, s.IsCalled); err != nil {
			return classify(err)
		}
	}
	return nil
}
