package job

import (
	"context"
	"fmt"
	"io"
	"slices"
	"time"

	"github.com/jackc/pgx/v5"
	"golang.org/x/sync/errgroup"

	"github.com/steepdb/steep_repl/internal/api"
	"github.com/steepdb/steep_repl/internal/snapshot"
)

// tableRetries is how often a worker retries a table after its connection broke, while the
// exported snapshot is still held.
const tableRetries = 2

// describe reads, inside the exported snapshot, what the manifest says besides the files:
// the schema (pg_dump, dumpSchema), the columns, the fingerprints and the sequences' values.
func (g *generation) describe(ctx context.Context, info api.SnapshotServer) (*snapshot.Manifest, error) {
	g.tr.step("describing", "")
	conn, err := connect(ctx, g.pool, "steep-repl snapshot describe")
	if err != nil {
		return nil, err
	}
	defer conn.Close(context.Background())
	if err := importSnapshot(ctx, conn, g.name); err != nil {
		return nil, classify(err)
	}
	defer api.EndSnapshot(context.Background(), conn)
	m := &snapshot.Manifest{
		FormatVersion: snapshot.FormatVersion, SnapshotID: g.s.ID, SourceNode: g.s.SourceNode,
		SourceDatabase: info.Database, ServerVersion: info.Version, ServerVersionNum: info.VersionNum,
		Encoding: info.Encoding, LSN: g.lsn, Compression: g.s.Compression, CopyFormat: snapshot.CopyFormat,
		CreatedAt: time.Now().UTC(),
	}
	if g.s.Subscribable() {
		m.SlotName, m.Publication = g.s.SlotName, g.s.Publication
	}
	schemas := map[string]bool{}
	for _, t := range g.scope {
		schemas[t.Schema] = true
		m.Tables = append(m.Tables, snapshot.Table{Schema: t.Schema, Name: t.Table, File: g.files[tableKey(t)],
			Columns: t.Columns, Fingerprint: t.Fingerprint})
	}
	for s := range schemas {
		m.Schemas = append(m.Schemas, s)
	}
	slices.Sort(m.Schemas)
	if m.Schema, err = g.dumpSchema(ctx, conn, info, m.Schemas); err != nil {
		return nil, err
	}
	views, err := api.SnapshotMatViews(ctx, conn, m.Schemas)
	if err != nil {
		return nil, classify(err)
	}
	for _, v := range views {
		m.MatViews = append(m.MatViews, snapshot.Relation{Schema: v.Schema, Name: v.Table})
	}
	seqs, err := api.SnapshotSequences(ctx, conn, g.s.Options)
	if err != nil {
		return nil, classify(err)
	}
	for _, s := range seqs {
		ms := snapshot.Sequence{Schema: s.Schema, Name: s.Name, DDL: s.DDL, OwnedBy: s.OwnedBy}
		if ms.LastValue, ms.IsCalled, err = api.SequenceValue(ctx, conn, s.Schema, s.Name); err != nil {
			return nil, classify(fmt.Errorf("read sequence %s.%s: %w", s.Schema, s.Name, err))
		}
		m.Sequences = append(m.Sequences, ms)
	}
	return m, nil
}

// writeTables writes every table not yet done with up to parallel workers, largest first.
func (g *generation) writeTables(ctx context.Context, done []api.DoneFile) error {
	skip := map[string]bool{}
	for _, d := range done {
		skip[d.Schema+"."+d.Table] = true
	}
	queue := make(chan api.ScopeTable, len(g.scope))
	for _, t := range g.scope { // already largest first
		if !skip[t.Schema+"."+t.Table] {
			queue <- t
		}
	}
	close(queue)
	workers := min(g.s.Parallel, len(queue))
	// The first worker error cancels the others (errgroup) and is the one returned.
	grp, gctx := errgroup.WithContext(ctx)
	for w := 0; w < workers; w++ {
		grp.Go(func() error { return g.worker(gctx, queue) })
	}
	if err := grp.Wait(); err != nil {
		return err
	}
	return context.Cause(ctx)
}

// worker imports the snapshot once and writes tables from queue; a broken connection is
// reopened (the snapshot re-imported) and the table retried.
func (g *generation) worker(ctx context.Context, queue <-chan api.ScopeTable) error {
	var conn *pgx.Conn
	defer func() {
		if conn != nil {
			conn.Close(context.Background())
		}
	}()
	open := func() error {
		if conn != nil {
			conn.Close(context.Background())
		}
		var err error
		if conn, err = connect(ctx, g.pool, "steep-repl snapshot worker"); err != nil {
			return err
		}
		return classify(importSnapshot(ctx, conn, g.name))
	}
	if err := open(); err != nil {
		return err
	}
	for t := range queue {
		for attempt := 0; ; attempt++ {
			if ctx.Err() != nil {
				return context.Cause(ctx)
			}
			err := g.writeTable(ctx, conn, t)
			if err == nil {
				break
			}
			if !transient(err) || attempt == tableRetries || ctx.Err() != nil {
				return classify(fmt.Errorf("write table %s.%s: %w", t.Schema, t.Table, err))
			}
			g.log.Warn("table write interrupted; retrying in the same snapshot", "event", "snapshot.table_retry",
				"table", t.Schema+"."+t.Table, "error", err.Error())
			if err := open(); err != nil {
				return err
			}
		}
	}
	return nil
}

// writeTable streams one table through COPY into its file and records it.
func (g *generation) writeTable(ctx context.Context, conn *pgx.Conn, t api.ScopeTable) error {
	name := tableKey(t)
	file := g.files[name]
	started := time.Now()
	fw, err := g.dir.CreateFile(file, g.s.Compression)
	if err != nil {
		return err
	}
	live := g.tr.start(name)
	// The server streams into 1 MB chunks that another goroutine compresses, hashes and
	// writes, so COPY never waits for the compressor (nor the compressor for COPY).
	aw := snapshot.NewAsyncWriter(countingWriter{w: fw, c: live}, 1<<20, 4)
	var sink io.Writer = aw
	if rate := optInt(g.s.Options, "max_rate"); rate > 0 {
		sink = throttledWriter{w: aw, t: newThrottle(ctx, rate)}
	}
	rows, err := api.CopyOut(ctx, conn, sink, t.Schema, t.Table, t.Columns)
	if cerr := aw.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		fw.Abort()
		g.tr.finish(name, false, 0, 0, 0)
		return err
	}
	res, err := fw.Close()
	if err != nil {
		g.tr.finish(name, false, 0, 0, 0)
		return err
	}
	d := api.DoneFile{Schema: t.Schema, Table: t.Table, File: file, Rows: rows,
		RawBytes: res.RawBytes, FileBytes: res.FileBytes, SHA256: res.SHA256}
	if err := api.SnapshotTableDone(ctx, g.pool, g.s.ID, d); err != nil {
		g.tr.finish(name, false, 0, 0, 0)
		return err
	}
	g.tr.finish(name, true, d.RawBytes, d.FileBytes, d.Rows)
	secs := time.Since(started).Seconds()
	g.log.Info("table written", "event", "snapshot.table_complete", "table", name, "file", file, "rows", d.Rows,
		"bytes_raw", d.RawBytes, "bytes_compressed", d.FileBytes, "seconds", fmt.Sprintf("%.2f", secs))
	return nil
}

// optInt reads an integer option of a jsonb options object.
func optInt(opts map[string]any, key string) int64 {
	f, _ := opts[key].(float64)
	return int64(f)
}
