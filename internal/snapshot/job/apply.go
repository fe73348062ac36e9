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
	create  map[string]bool // tables this attempt creates from the manifest's DDL

	anyCreated bool // some table of the snapshot was created by this apply

	mu     sync.Mutex
	failed []string // tables refused (checksum, rows), with why
}

func apply(ctx context.Context, job *runner.Job, root *snapshot.Root, log *slog.Logger) (map[string]any, error) {
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
	res, err := runApply(ctx, job, a, root, tr, log)
	stop()
	return res, err
}

// runApply applies a.Path; on a final failure it records it (failing a subscribing init).
func runApply(ctx context.Context, job *runner.Job, a *api.ApplyRow, root *snapshot.Root, tr *tracker, log *slog.Logger) (map[string]any, error) {
	ap := &application{job: job, pool: job.DB, a: a, root: root, log: log, tr: tr, create: map[string]bool{}}
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
	ap.tr.step("constraints", "")
	if err := ap.foreignKeys(ctx); err != nil {
		return nil, err
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

// prepare decides, for every table not yet loaded, whether it exists here (and then has the
// snapshot's columns) or is created from the manifest; it creates the schemas and the
// sequences the new tables' defaults need. It returns the tables to load.
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
	weights := map[string]int64{}
	var rowsTotal int64
	var pending []snapshot.Table
	var diffs []string
	for _, t := range ap.m.Tables {
		name := t.QualifiedName()
		weights[name] = t.RawBytes
		rowsTotal += t.Rows
		if done[name] {
			continue
		}
		fp, exists := have[name]
		switch {
		case !exists:
			ap.create[name] = true
		case fp != t.Fingerprint:
			diffs = append(diffs, name)
		}
		pending = append(pending, t)
	}
	if len(diffs) > 0 {
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
	{ // IF NOT EXISTS: harmless when the target has them already
		for _, s := range ap.m.Schemas {
			if err := api.CreateSchema(ctx, ap.pool, s); err != nil {
				return nil, classify(fmt.Errorf("create schema %s: %w", s, err))
			}
		}
		for _, s := range ap.m.Sequences {
			if s.DDL != "" {
				if _, err := ap.pool.Exec(ctx, s.DDL); err != nil {
					return nil, classify(fmt.Errorf("create sequence %s.%s: %w", s.Schema, s.Name, err))
				}
			}
		}
	}
	return pending, nil
}

// foreignKeys adds the foreign keys of the tables this apply created (in this attempt or an
// earlier one), validating them, once every table is loaded; one already there is skipped.
func (ap *application) foreignKeys(ctx context.Context) error {
	loaded, err := api.ApplyLoadedTables(ctx, ap.pool, ap.a.ID)
	if err != nil {
		return classify(err)
	}
	created := map[string]bool{}
	for _, t := range loaded {
		if t.Created {
			created[t.Schema+"."+t.Table] = true
			ap.anyCreated = true
		}
	}
	for _, t := range ap.m.Tables {
		if !created[t.QualifiedName()] {
			continue
		}
		for _, fk := range t.DDL.ForeignKeys {
			if _, err := ap.pool.Exec(ctx, fk); err != nil && api.SQLState(err) != "42710" {
				return classify(fmt.Errorf("add foreign key of %s: %w", t.QualifiedName(), err))
			}
		}
	}
	return nil
}

// sequences restores every sequence of the snapshot to its value, and the OWNED BY links
// when the apply created tables.
func (ap *application) sequences(ctx context.Context) error {
	for _, s := range ap.m.Sequences {
		if err := api.SetSequence(ctx, ap.pool, api.Identifier(s.Schema, s.Name), s.LastValue, s.IsCalled); err != nil {
			return classify(err)
		}
		if s.OwnedBy != "" && ap.anyCreated {
			if _, err := ap.pool.Exec(ctx, s.OwnedBy); err != nil {
				return classify(fmt.Errorf("sequence %s.%s owned by: %w", s.Schema, s.Name, err))
			}
		}
	}
	return nil
}
