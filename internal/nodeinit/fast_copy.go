package nodeinit

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
	"golang.org/x/sync/errgroup"

	"github.com/steepdb/steep_repl/internal/api"
	"github.com/steepdb/steep_repl/internal/runner"
	"github.com/steepdb/steep_repl/internal/snapshot"
)

// chunkTimeout bounds one chunk's COPY on the source (a peer session's 60 s would cut a large
// split_threshold's chunks short).
const chunkTimeout = time.Hour

// chunk is a block range [From, To) of a table (To < 0: to the end), one COPY and one
// transaction on the target.
type chunk struct {
	Table    api.FastTable
	From, To int64
	Bytes    int64 // its share of the heap, to order the work largest first
	Of       int   // how many chunks the table is copied in
}

// planChunks splits each table whose heap is larger than threshold into block ranges of about
// threshold bytes (the last range open-ended, so rows of pages added since the size was read
// are never missed), and orders every chunk largest first so the tail of the copy is short.
func planChunks(tables []api.FastTable, sizes []api.SourceBlocks, threshold int64) ([]chunk, error) {
	bySize := map[string]api.SourceBlocks{}
	for _, s := range sizes {
		bySize[s.Schema+"."+s.Name] = s
	}
	var out []chunk
	for _, t := range tables {
		s, ok := bySize[t.Schema+"."+t.Name]
		if !ok {
			return nil, fmt.Errorf("table %s is not on the source", api.Identifier(t.Schema, t.Name))
		}
		bytes := s.Blocks * s.BlockSize
		per := max(threshold/max(s.BlockSize, 1), 1)
		if bytes <= threshold || s.Blocks <= per {
			out = append(out, chunk{Table: t, From: 0, To: -1, Bytes: bytes, Of: 1})
			continue
		}
		n := int((s.Blocks + per - 1) / per)
		for i := 0; i < n; i++ {
			c := chunk{Table: t, From: int64(i) * per, To: int64(i+1) * per, Bytes: per * s.BlockSize, Of: n}
			if i == n-1 {
				c.To, c.Bytes = -1, (s.Blocks-c.From)*s.BlockSize
			}
			out = append(out, c)
		}
	}
	sort.SliceStable(out, func(i, j int) bool { return out[i].Bytes > out[j].Bytes })
	return out, nil
}

// copied totals what the workers loaded.
type copied struct {
	rows, bytes int64
	chunks      int
}

// copyAll copies every chunk of the plan's tables not copied yet with plan.Parallel workers,
// each inside the exported snapshot, each chunk committed with its progress row under
// replication origin origin.
func copyAll(ctx context.Context, job *runner.Job, plan *api.InitPlan, src *pgx.Conn, snap, origin string, log *slog.Logger) (copied, error) {
	tables, err := api.FastTargetTables(ctx, job.DB, plan.Target)
	if err != nil {
		return copied{}, err
	}
	if len(tables) == 0 {
		return copied{}, errNoTables
	}
	threshold, err := api.FastSplitThreshold(ctx, job.DB, plan.Target)
	if err != nil {
		return copied{}, err
	}
	if err := chooseCopyFormat(ctx, job.DB, src, plan, tables, log); err != nil {
		return copied{}, err
	}
	chunks, err := pendingChunks(ctx, job.DB, src, plan, tables, threshold, log)
	if err != nil {
		return copied{}, err
	}
	work := make(chan chunk)
	commits := &originCommits{origin: origin}
	var total copied
	var mu sync.Mutex
	grp, gctx := errgroup.WithContext(ctx)
	grp.Go(func() error {
		defer close(work)
		for _, c := range chunks {
			select {
			case work <- c:
			case <-gctx.Done():
				return nil
			}
		}
		return nil
	})
	for w := 0; w < min(max(plan.Parallel, 1), len(chunks)); w++ {
		grp.Go(func() error {
			return copyWorker(gctx, job, plan, snap, commits, work, log, func(rows, bytes int64) {
				mu.Lock()
				total.rows, total.bytes, total.chunks = total.rows+rows, total.bytes+bytes, total.chunks+1
				mu.Unlock()
			})
		})
	}
	if err := grp.Wait(); err != nil {
		return copied{}, err
	}
	return total, context.Cause(ctx)
}

// pendingChunks returns the chunks still to copy: on the snapshot's first attempt it plans them
// and records the plan; a resumed attempt reads what the plan has not marked done.
func pendingChunks(ctx context.Context, db api.DB, src *pgx.Conn, plan *api.InitPlan, tables []api.FastTable,
	threshold int64, log *slog.Logger) ([]chunk, error) {
	planned, err := api.FastPlanned(ctx, db, plan.Target)
	if err != nil {
		return nil, err
	}
	if !planned {
		sizes, err := api.FastSourceBlocks(ctx, src, tables)
		if err != nil {
			return nil, fmt.Errorf("on source node %s: %w", plan.Source, err)
		}
		chunks, err := planChunks(tables, sizes, threshold)
		if err != nil {
			return nil, fmt.Errorf("on source node %s: %w", plan.Source, err)
		}
		ranges := make([]api.FastRange, len(chunks))
		for i, c := range chunks {
			ranges[i] = api.FastRange{Schema: c.Table.Schema, Table: c.Table.Name, From: c.From, To: c.To, Of: c.Of, Bytes: c.Bytes}
		}
		if err := api.FastPlan(ctx, db, plan.Target, ranges); err != nil {
			return nil, err
		}
		log.Info("copy planned", "event", "init.fast_planned", "tables", len(tables), "chunks", len(chunks), "split_threshold", threshold)
	}
	ranges, err := api.FastPendingRanges(ctx, db, plan.Target)
	if err != nil {
		return nil, err
	}
	byName := map[string]api.FastTable{}
	for _, t := range tables {
		byName[t.Schema+"."+t.Name] = t
	}
	out := make([]chunk, 0, len(ranges))
	for _, r := range ranges {
		t, ok := byName[r.Schema+"."+r.Table]
		if !ok {
			return nil, fmt.Errorf("planned table %s is not in the init", api.Identifier(r.Schema, r.Table))
		}
		out = append(out, chunk{Table: t, From: r.From, To: r.To, Bytes: r.Bytes, Of: r.Of})
	}
	if planned {
		log.Info("resuming the copy", "event", "init.fast_pending", "chunks", len(out))
	}
	return out, nil
}

// chooseCopyFormat sets each table's Binary by the copy_format option: text; binary; or auto,
// binary where both servers are of the same major and the table's columns have the same types
// with binary I/O on both sides (binary COPY skips parsing and printing every value).
func chooseCopyFormat(ctx context.Context, db api.DB, src *pgx.Conn, plan *api.InitPlan, tables []api.FastTable, log *slog.Logger) error {
	format, err := api.FastCopyFormat(ctx, db, plan.Target)
	if err != nil {
		return err
	}
	if format == "text" {
		log.Info("copy format chosen", "event", "init.fast_copy_format", "copy_format", format, "binary_tables", 0, "text_tables", len(tables))
		return nil
	}
	srcMajor, err := api.ServerMajor(ctx, src)
	if err != nil {
		return fmt.Errorf("on source node %s: %w", plan.Source, err)
	}
	major, err := api.ServerMajor(ctx, db)
	if err != nil {
		return err
	}
	cols, err := api.FastSourceColumns(ctx, src, tables)
	if err != nil {
		return fmt.Errorf("on source node %s: %w", plan.Source, err)
	}
	bySrc := map[string]api.SourceColumns{}
	for _, c := range cols {
		bySrc[c.Schema+"."+c.Name] = c
	}
	var text []string
	for i := range tables {
		t := &tables[i]
		t.Binary = format == "binary" || (srcMajor == major && api.BinaryCopy(*t, bySrc[t.Schema+"."+t.Name]))
		if !t.Binary {
			text = append(text, api.Identifier(t.Schema, t.Name))
		}
	}
	log.Info("copy format chosen", "event", "init.fast_copy_format", "copy_format", format, "source_major", srcMajor,
		"target_major", major, "binary_tables", len(tables)-len(text), "text_tables", len(text), "text", text)
	return nil
}

// copyWorker imports the snapshot on its own source session and copies chunks until there are none.
func copyWorker(ctx context.Context, job *runner.Job, plan *api.InitPlan, snap string, commits *originCommits, work <-chan chunk,
	log *slog.Logger, done func(rows, bytes int64)) error {
	src, err := connectSource(ctx, plan.Source, plan.SourceConninfo)
	if err != nil {
		return err
	}
	defer src.Close(context.Background())
	if err := api.SetStatementTimeout(ctx, src, chunkTimeout); err != nil {
		return fmt.Errorf("on source node %s: %w", plan.Source, err)
	}
	if err := api.ImportSnapshot(ctx, src, snap); err != nil {
		return fmt.Errorf("on source node %s: %w", plan.Source, err)
	}
	dst, err := job.DB.Acquire(ctx)
	if err != nil {
		return fmt.Errorf("connect to the target: %w", err)
	}
	defer dst.Release()
	for c := range work {
		started := time.Now()
		rows, bytes, err := copyChunk(ctx, src, dst.Conn(), plan.Target, c, commits)
		if err != nil {
			return fmt.Errorf("copy %s blocks %d..%d: %w", api.Identifier(c.Table.Schema, c.Table.Name), c.From, c.To, err)
		}
		done(rows, bytes)
		log.Info("chunk copied", "event", "init.fast_chunk_done", "table", api.Identifier(c.Table.Schema, c.Table.Name),
			"from_block", c.From, "to_block", c.To, "of", c.Of, "rows", rows, "bytes", bytes,
			"seconds", fmt.Sprintf("%.2f", time.Since(started).Seconds()))
	}
	return nil
}

// copyChunk streams one block range from the source's COPY TO into the target's COPY FROM, run
// as the table's owner, and records it in the same transaction, committed under the origin.
func copyChunk(ctx context.Context, src, dst *pgx.Conn, node string, c chunk, commits *originCommits) (rows, bytes int64, err error) {
	tx, err := dst.Begin(ctx)
	if err != nil {
		return 0, 0, err
	}
	defer func() {
		if err != nil {
			tx.Rollback(context.Background())
		}
	}()
	if err := api.AsTableOwner(ctx, tx, c.Table.Owner); err != nil {
		return 0, 0, err
	}
	pr, pw := io.Pipe()
	var n atomic.Int64
	outErr := make(chan error, 1)
	go func() {
		// Buffered, so the source keeps streaming while the target writes the previous chunk.
		aw := snapshot.NewAsyncWriter(counter{w: pw, n: &n}, 1<<20, 4)
		_, err := api.CopyRangeOut(ctx, src, aw, c.Table, c.From, c.To)
		if cerr := aw.Close(); err == nil {
			err = cerr
		}
		pw.CloseWithError(err)
		outErr <- err
	}()
	rows, inErr := api.CopyRangeIn(ctx, tx.Conn(), pr, c.Table)
	pr.CloseWithError(fmt.Errorf("the target stopped reading"))
	oErr := <-outErr
	if inErr != nil { // first: a target that stopped reading makes the source's side fail too
		return 0, 0, fmt.Errorf("write into the target: %w", inErr)
	}
	if oErr != nil {
		return 0, 0, fmt.Errorf("read from the source: %w", oErr)
	}
	if err := api.ResetRole(ctx, tx); err != nil {
		return 0, 0, err
	}
	if err := api.FastChunkDone(ctx, tx, node, c.Table.Schema, c.Table.Name, rows, n.Load(), c.Of); err != nil {
		return 0, 0, err
	}
	if err := api.FastRangeDone(ctx, tx, node, c.Table.Schema, c.Table.Name, c.From); err != nil {
		return 0, 0, err
	}
	if err := commits.commit(ctx, tx); err != nil {
		return 0, 0, err
	}
	return rows, n.Load(), nil
}

// originCommits commits the chunks under the subscription's replication origin. A session sets
// the origin up only for its commit (without an origin LSN, so the origin's progress does not
// move) and resets it after: an origin is held by one session at a time, so the commits of the
// workers take turns while their COPYs run at once.
type originCommits struct {
	origin string
	mu     sync.Mutex
}

func (o *originCommits) commit(ctx context.Context, tx pgx.Tx) error {
	o.mu.Lock()
	defer o.mu.Unlock()
	if err := api.FastOriginSetup(ctx, tx, o.origin); err != nil {
		return err
	}
	cerr := tx.Commit(ctx)
	if rerr := api.FastOriginReset(context.Background(), tx.Conn()); rerr != nil {
		// The session must not go back to the pool holding the origin: closing it releases it.
		tx.Conn().Close(context.Background())
		if cerr == nil {
			cerr = rerr
		}
	}
	if cerr != nil {
		return fmt.Errorf("commit: %w", cerr)
	}
	return nil
}

// counter counts the bytes written through it.
type counter struct {
	w io.Writer
	n *atomic.Int64
}

func (c counter) Write(p []byte) (int, error) {
	k, err := c.w.Write(p)
	c.n.Add(int64(k))
	return k, err
}
