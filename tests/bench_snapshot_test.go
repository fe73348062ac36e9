package tests

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/steepdb/steep_repl/internal/snapshot"
	"github.com/steepdb/steep_repl/tests/harness"
)

// BenchmarkSnapshotGenerateAndApply: generate (4 workers, zstd) and apply (4 workers) of a
// generated database of STEEP_BENCH_MB (default 1024) MB, each against its bare limit in the
// same run: for generate the same parallel COPY ... TO STDOUT drained and discarded, for
// apply parallel COPY ... FROM of the same data uncompressed into the same tables (created
// without indexes, then the same constraints added, one transaction per table, as the apply
// does). Targets: generate <= 1.3x, apply <= 1.2x.
//
// It also measures what restoring post-data after the load buys (issue 11): the same apply
// of the same snapshot into the same tables created with their indexes and constraints
// first (pg_restore pre-data and post-data before the clock, so the apply loads only the
// data, as an apply into a target that has the tables does). apply_vs_indexed_first_x below
// 1 means building them after the load is faster.
func BenchmarkSnapshotGenerateAndApply(b *testing.B) {
	a, target := setupEmptyPair(b)
	a.Exec(b, "", benchTablesDDL)
	generate(b, a, benchMB())
	tables := []string{"big", "medium", "small"}
	const workers = 4
	ctx := context.Background()

	// Generate: bare parallel COPY TO, then ours.
	a.Exec(b, "", "CHECKPOINT")
	start := time.Now()
	var raw int64
	var mu sync.Mutex
	parallelTables(b, tables, workers, func(tbl string) {
		conn := connectBench(b, a.ConnString(""))
		defer conn.Close(ctx)
		cw := &countingDiscard{}
		if _, err := conn.PgConn().CopyTo(ctx, cw, "COPY "+tbl+" TO STDOUT"); err != nil {
			b.Fatalf("bare COPY TO %s: %v", tbl, err)
		}
		mu.Lock()
		raw += cw.n
		mu.Unlock()
	})
	bareGen := time.Since(start)

	carA := startSidecar(b, a, "bench_a")
	dir := filepath.Join(b.TempDir(), "snap")
	start = time.Now()
	id := harness.QueryOne[string](b, a, "", "SELECT steep_repl.generate_snapshot($1, $2)", dir, fmt.Sprintf(`{"parallel": %d, "compression": "zstd"}`, workers))
	job := harness.QueryOne[int64](b, a, "", "SELECT job_id FROM steep_repl.snapshots WHERE id = $1", id)
	waitBenchJob(b, a, job)
	ours := time.Since(start)
	carA.stop(b, 10*time.Second)
	m, err := snapshot.ReadManifest(dir)
	if err != nil {
		b.Fatal(err)
	}
	var file int64
	for _, t := range m.Tables {
		file += t.FileBytes
	}

	// Apply: bare parallel COPY FROM of the uncompressed files into a database of the target
	// node, then ours into the node's own database.
	plain := filepath.Join(b.TempDir(), "plain")
	os.MkdirAll(plain, 0o755)
	for _, t := range m.Tables {
		r, err := snapshot.OpenFile(dir, t.File, m.Compression)
		if err != nil {
			b.Fatal(err)
		}
		f, _ := os.Create(filepath.Join(plain, t.Name))
		if _, err := io.Copy(f, r); err != nil {
			b.Fatal(err)
		}
		f.Sync() // no writeback of these files during the timed load
		f.Close()
		r.Finish()
	}
	target.CreateDatabase(b, "bare")
	byName := map[string]snapshot.Table{}
	for _, t := range m.Tables {
		byName[t.Name] = t
	}
	// The bare load gets the same schema: pre-data before the clock, post-data on it.
	schemaFile := filepath.Join(dir, m.Schema.File)
	restoreSections(b, target, "bare", schemaFile, "pre-data")
	target.Exec(b, "", "CHECKPOINT") // neither load pays for the other's WAL
	start = time.Now()
	parallelTables(b, tables, workers, func(tbl string) {
		t := byName[tbl]
		conn := connectBench(b, target.ConnString("bare"))
		defer conn.Close(ctx)
		f, err := os.Open(filepath.Join(plain, tbl))
		if err != nil {
			b.Fatal(err)
		}
		defer f.Close()
		if _, err := conn.PgConn().CopyFrom(ctx, f, "COPY "+tbl+" ("+strings.Join(t.Columns, ", ")+") FROM STDIN"); err != nil {
			b.Fatalf("bare COPY FROM %s: %v", tbl, err)
		}
	})
	restoreSections(b, target, "bare", schemaFile, "post-data")
	bareApply := time.Since(start)

	startSidecar(b, target, "bench_b")
	target.Exec(b, "", "CHECKPOINT")
	start = time.Now()
	job = harness.QueryOne[int64](b, target, "", "SELECT steep_repl.apply_snapshot($1, $2)", dir, fmt.Sprintf(`{"parallel": %d}`, workers))
	waitBenchJob(b, target, job)
	oursApply := time.Since(start)

	// The same apply into the same tables with their indexes and constraints made first.
	target.Exec(b, "", "DROP TABLE big, medium, small")
	restoreSections(b, target, "", schemaFile, "pre-data", "post-data")
	target.Exec(b, "", "CHECKPOINT")
	start = time.Now()
	job = harness.QueryOne[int64](b, target, "", "SELECT steep_repl.apply_snapshot($1, $2)", dir, fmt.Sprintf(`{"parallel": %d}`, workers))
	waitBenchJob(b, target, job)
	indexedFirst := time.Since(start)
	if n := harness.QueryOne[int64](b, target, "", "SELECT count(*) FROM steep_repl.events WHERE event = 'snapshot.schema_pre_data' AND (detail->>'apply_id')::bigint = (SELECT id FROM steep_repl.snapshot_applies WHERE job_id = $1)", job); n != 0 {
		b.Fatalf("the indexed-first apply restored the schema itself: it must load only the data")
	}

	mb := float64(raw) / 1e6
	b.ReportMetric(mb, "raw_MB")
	b.ReportMetric(float64(raw)/float64(file), "zstd_ratio")
	b.ReportMetric(bareGen.Seconds(), "gen_bare_s")
	b.ReportMetric(ours.Seconds(), "gen_s")
	b.ReportMetric(ours.Seconds()/bareGen.Seconds(), "gen_vs_bare_x")
	b.ReportMetric(mb/ours.Seconds(), "gen_MB/s")
	b.ReportMetric(bareApply.Seconds(), "apply_bare_s")
	b.ReportMetric(oursApply.Seconds(), "apply_s")
	b.ReportMetric(oursApply.Seconds()/bareApply.Seconds(), "apply_vs_bare_x")
	b.ReportMetric(mb/oursApply.Seconds(), "apply_MB/s")
	b.ReportMetric(indexedFirst.Seconds(), "apply_indexed_first_s")
	b.ReportMetric(oursApply.Seconds()/indexedFirst.Seconds(), "apply_vs_indexed_first_x")
	b.Logf("%.0f MB of COPY text (%.0f MB zstd, %.2fx): generate %s vs bare COPY TO %s (%.2fx, target 1.3); apply %s vs bare COPY FROM %s (%.2fx, target 1.2)",
		mb, float64(file)/1e6, float64(raw)/float64(file), ours.Round(10*time.Millisecond), bareGen.Round(10*time.Millisecond),
		ours.Seconds()/bareGen.Seconds(), oursApply.Round(10*time.Millisecond), bareApply.Round(10*time.Millisecond),
		oursApply.Seconds()/bareApply.Seconds())
	b.Logf("apply with post-data after the load %s vs the same apply into tables with their indexes and constraints first %s (%.2fx)",
		oursApply.Round(10*time.Millisecond), indexedFirst.Round(10*time.Millisecond), oursApply.Seconds()/indexedFirst.Seconds())
}

// restoreSections restores sections of the schema archive into db of n with pg_restore, leaving
// out the CREATE SCHEMA of public (which every database has), as the apply does.
func restoreSections(b *testing.B, n *harness.Node, db, archive string, sections ...string) {
	var keep []string
	for _, line := range strings.Split(n.RunClient(b, db, "pg_restore", "-l", archive), "\n") {
		if !strings.Contains(line, " SCHEMA - public ") {
			keep = append(keep, line)
		}
	}
	list := filepath.Join(b.TempDir(), "toc.list")
	if err := os.WriteFile(list, []byte(strings.Join(keep, "\n")), 0o644); err != nil {
		b.Fatal(err)
	}
	args := []string{"--no-owner", "--exit-on-error", "--use-list=" + list, "-d", n.ConnString(db)}
	for _, s := range sections {
		args = append(args, "--section="+s)
	}
	n.RunClient(b, db, "pg_restore", append(args, archive)...)
}

// parallelTables runs f for each table on up to workers goroutines, in the given order.
func parallelTables(b *testing.B, tables []string, workers int, f func(string)) {
	queue := make(chan string, len(tables))
	for _, t := range tables {
		queue <- t
	}
	close(queue)
	var wg sync.WaitGroup
	for w := 0; w < min(workers, len(tables)); w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for t := range queue {
				f(t)
			}
		}()
	}
	wg.Wait()
}

func connectBench(b *testing.B, url string) *pgx.Conn {
	conn, err := pgx.Connect(context.Background(), url)
	if err != nil {
		b.Fatal(err)
	}
	return conn
}

func waitBenchJob(b *testing.B, n *harness.Node, job int64) {
	n.WaitFor(b, 30*time.Minute, fmt.Sprintf("job %d", job), func() bool {
		st := harness.QueryOne[string](b, n, "", "SELECT state FROM steep_repl.jobs WHERE id = $1", job)
		if st == "failed" || st == "cancelled" {
			b.Fatalf("job %d %s: %s", job, st, harness.QueryOne[string](b, n, "", "SELECT coalesce(error, '') FROM steep_repl.jobs WHERE id = $1", job))
		}
		return st == "succeeded"
	})
}

type countingDiscard struct{ n int64 }

func (c *countingDiscard) Write(p []byte) (int, error) {
	c.n += int64(len(p))
	return len(p), nil
}
