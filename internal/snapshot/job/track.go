package job

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/steepdb/steep_repl/internal/api"
)

// reportEvery is how often the progress row is refreshed.
const reportEvery = 500 * time.Millisecond

// tracker holds a job's progress and writes it to steep_repl.snapshot_progress: counts only,
// the extension computes the throughput and the ETA (steep_repl._snapshot_progress_set).
type tracker struct {
	db  api.DB
	log *slog.Logger

	mu       sync.Mutex
	p        api.SnapshotProgress
	weights  map[string]int64 // table -> expected raw bytes (the percent's weights)
	finished map[string]finishedTable
	live     map[string]*liveCount
	percent  float64
	restart  bool
	mirrored *api.SnapshotProgress // another job's progress shown as this one's (snapshot.init)
}

type finishedTable struct{ raw, file, rows int64 }

// liveCount counts the raw bytes and rows (newlines: COPY text escapes those inside values)
// of a table being streamed; read by the reporter while the worker writes.
type liveCount struct {
	bytes, rows atomic.Int64
}

func (c *liveCount) add(p []byte) {
	c.bytes.Add(int64(len(p)))
	c.rows.Add(int64(bytes.Count(p, []byte{'\n'})))
}

func newTracker(db api.DB, log *slog.Logger, jobID int64, snapshotID, phase string) *tracker {
	t := &tracker{db: db, log: log, weights: map[string]int64{}, finished: map[string]finishedTable{}, live: map[string]*liveCount{}}
	t.p = api.SnapshotProgress{JobID: jobID, Phase: phase, Step: "starting"}
	if snapshotID != "" {
		t.p.SnapshotID = &snapshotID
	}
	return t
}

// plan sets the tables to do (name -> expected raw bytes) and the rows expected.
func (t *tracker) plan(weights map[string]int64, rowsTotal int64) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.weights = weights
	t.p.TablesTotal = len(weights)
	t.p.RowsTotal = rowsTotal
}

// step names what the job is doing; message "" keeps the previous one.
func (t *tracker) step(step, message string) {
	t.mu.Lock()
	t.p.Step = step
	if message != "" {
		t.p.Message = &message
	}
	t.mu.Unlock()
}

func (t *tracker) setSnapshotID(id string) {
	t.mu.Lock()
	t.p.SnapshotID = &id
	t.mu.Unlock()
}

// reset starts the percent again (a generation restarted with a new slot).
func (t *tracker) reset() {
	t.mu.Lock()
	t.finished = map[string]finishedTable{}
	t.live = map[string]*liveCount{}
	t.percent = 0
	t.restart = true
	t.mu.Unlock()
}

// start registers a table being streamed and returns its counter.
func (t *tracker) start(name string) *liveCount {
	c := &liveCount{}
	t.mu.Lock()
	t.live[name] = c
	t.mu.Unlock()
	return c
}

// finish records a table as done (or drops it from the live set when ok is false).
func (t *tracker) finish(name string, ok bool, raw, file, rows int64) {
	t.mu.Lock()
	defer t.mu.Unlock()
	delete(t.live, name)
	if ok {
		t.finished[name] = finishedTable{raw, file, rows}
	}
}

// count adjusts the checksum and skipped-row counters.
func (t *tracker) count(verified, failed int, skipped int64) {
	t.mu.Lock()
	t.p.ChecksumsVerified += verified
	t.p.ChecksumsFailed += failed
	t.p.TuplesSkipped += skipped
	t.mu.Unlock()
}

// mirror shows another job's progress (the source's generation) as this job's.
func (t *tracker) mirror(p api.SnapshotProgress) {
	t.mu.Lock()
	t.mirrored = &p
	t.mu.Unlock()
}

// sample computes the row to write at now.
func (t *tracker) sample(now time.Time) (api.SnapshotProgress, bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.mirrored != nil {
		p := *t.mirrored
		p.JobID, p.Phase, p.Step = t.p.JobID, t.p.Phase, t.p.Step
		if t.p.Message != nil {
			p.Message = t.p.Message
		}
		return p, false
	}
	p := t.p
	var wTotal, wDone float64
	var rawDone, rawFin, fileFin, rowsDone int64
	for name, w := range t.weights {
		w = max(w, 1)
		wTotal += float64(w)
		switch f, done := t.finished[name]; {
		case done:
			wDone += float64(w)
			p.BytesTotal += f.raw
			rawDone += f.raw
			rawFin += f.raw
			fileFin += f.file
			rowsDone += f.rows
		case t.live[name] != nil:
			b := t.live[name].bytes.Load()
			wDone += float64(w) * min(0.99, float64(b)/float64(w))
			p.BytesTotal += max(w, b)
			rawDone += b
			rowsDone += t.live[name].rows.Load()
		default:
			p.BytesTotal += w
		}
	}
	p.TablesDone = len(t.finished)
	p.BytesDone, p.RowsDone = rawDone, rowsDone
	p.RowsTotal = max(p.RowsTotal, rowsDone)
	if wTotal > 0 {
		t.percent = max(t.percent, 100*wDone/wTotal)
	}
	if p.TablesTotal > 0 && p.TablesDone == p.TablesTotal {
		t.percent = 100
	}
	p.Percent = float64(int64(t.percent*100)) / 100
	if fileFin > 0 {
		r := float64(rawFin) / float64(fileFin)
		p.CompressionRatio = &r
	}
	names := make([]string, 0, len(t.live))
	for n := range t.live {
		names = append(names, n)
	}
	slices.Sort(names)
	if len(names) > 0 {
		cur := strings.Join(names, ", ")
		p.CurrentTable = &cur
	}
	restart := t.restart
	t.restart = false
	return p, restart
}

// flush writes the progress row now.
func (t *tracker) flush(ctx context.Context) {
	p, restart := t.sample(time.Now())
	if err := api.SetSnapshotProgress(ctx, t.db, p, restart); err != nil && ctx.Err() == nil {
		t.log.Warn("could not record progress", "event", "snapshot.progress_failed", "error", err.Error())
	}
}

// run refreshes the progress row every reportEvery until ctx ends, then once more with a
// context of its own so the last state is recorded.
func (t *tracker) run(ctx context.Context) (stop func()) {
	done := make(chan struct{})
	stopped := make(chan struct{})
	go func() {
		defer close(stopped)
		tick := time.NewTicker(reportEvery)
		defer tick.Stop()
		for {
			t.flush(ctx)
			select {
			case <-ctx.Done():
				return
			case <-done:
				return
			case <-tick.C:
			}
		}
	}()
	return func() {
		close(done)
		<-stopped
		fctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		t.flush(fctx)
	}
}

// countingWriter feeds a liveCount on its way to w.
type countingWriter struct {
	w io.Writer
	c *liveCount
}

func (c countingWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.c.add(p[:n])
	return n, err
}

// countingReader feeds a liveCount with what it reads from r.
type countingReader struct {
	r io.Reader
	c *liveCount
}

func (c countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.c.add(p[:n])
	return n, err
}

// throttle keeps a stream at or under rate bytes per second (0: no cap) by sleeping when it
// runs ahead; the sleep ends early when ctx does.
type throttle struct {
	ctx   context.Context
	rate  int64
	start time.Time
	n     int64
}

func newThrottle(ctx context.Context, rate int64) *throttle {
	return &throttle{ctx: ctx, rate: rate, start: time.Now()}
}

func (t *throttle) wait(n int) {
	if t == nil || t.rate <= 0 {
		return
	}
	t.n += int64(n)
	ahead := time.Duration(float64(t.n)/float64(t.rate)*float64(time.Second)) - time.Since(t.start)
	if ahead > 5*time.Millisecond {
		select {
		case <-t.ctx.Done():
		case <-time.After(ahead):
		}
	}
}

// throttledWriter and throttledReader apply a throttle to a stream.
type throttledWriter struct {
	w io.Writer
	t *throttle
}

func (w throttledWriter) Write(p []byte) (int, error) {
	w.t.wait(len(p))
	return w.w.Write(p)
}

type throttledReader struct {
	r io.Reader
	t *throttle
}

func (r throttledReader) Read(p []byte) (int, error) {
	n, err := r.r.Read(p)
	r.t.wait(n)
	return n, err
}
