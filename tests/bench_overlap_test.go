package tests

import (
	"context"
	"fmt"
	"os"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/steepdb/steep_repl/internal/api"
	"github.com/steepdb/steep_repl/internal/dbconn"
	"github.com/steepdb/steep_repl/internal/overlap"
	"github.com/steepdb/steep_repl/tests/harness"
)

// BenchmarkAnalyzeOverlap: the overlap analysis (the SQL analyze_overlap, then the streaming one
// of steep-repl analyze-overlap in its three stream shapes) of a bench-data-like table held by two nodes with 1%
// of its rows differing (0.5% changed, 0.25% only on each side), against in the same run the
// server's own hash floor: COPY (SELECT id, row_hash(t) FROM t) TO '/dev/null' on both nodes at
// once. The peer is reached through a TCP proxy that counts the bytes it sends, so bytes/row is
// measured, not estimated. STEEP_BENCH_ROWS sets the rows (default 2,000,000; the figure
// is 10,000,000).
func BenchmarkAnalyzeOverlap(b *testing.B) {
	rows := 2_000_000
	if v, err := strconv.Atoi(os.Getenv("STEEP_BENCH_ROWS")); err == nil && v > 0 {
		rows = v
	}
	opts := harness.DefaultOptions()
	opts.Settings = fastSupervisor
	nodes := harness.StartN(b, 2, opts)
	a, t := nodes[0], nodes[1]
	proxy := harness.StartProxy(b, fmt.Sprintf("127.0.0.1:%d", a.Port), harness.ProxyForward)
	for _, n := range nodes {
		n.Exec(b, "", "CREATE EXTENSION steep_repl CASCADE")
		peer := libpqConninfo(a)
		if n == t {
			peer = fmt.Sprintf("host=127.0.0.1 port=%d dbname=postgres user=postgres", proxy.Port())
		}
		n.Exec(b, "", "SELECT steep_repl.register_node('node_a', $1, $2)", peer, n == a)
		n.Exec(b, "", "SELECT steep_repl.register_node('node_b', $1, $2)", libpqConninfo(t), n == t)
	}
	loadBigDiffering(b, a, t, rows)
	floor := func() time.Duration { return hashFloor(b, nodes) }
	// Each path is timed between two floors and against their mean (the machine's load drifts).
	type result struct {
		took  time.Duration
		base  time.Duration
		bytes int64
	}
	measure := func(name string, run func() api.Overlap) result {
		before := floor()
		sent := proxy.BytesFromTarget()
		start := time.Now()
		o := run()
		took := time.Since(start)
		bytes := proxy.BytesFromTarget() - sent
		after := floor()
		// Ids 7 mod 400 are never multiples of 200: the changed and the deleted rows are distinct.
		changed, gone, added := int64(rows/200), int64((rows+393)/400), int64(rows/400)
		if o.Conflicting != changed || o.PeerOnly != gone || o.LocalOnly != added || o.Identical != int64(rows)-changed-gone {
			b.Fatalf("%s: %d identical, %d conflicting, %d local only, %d peer only; want %d, %d, %d, %d",
				name, o.Identical, o.Conflicting, o.LocalOnly, o.PeerOnly, int64(rows)-changed-gone, changed, added, gone)
		}
		r := result{took, (before + after) / 2, bytes}
		b.Logf("%d rows, 1%% differing: %s %s, hash floor on both nodes at once %s then %s (ratio to their mean %.2f); the peer sent %d bytes (%.1f per row)",
			rows, name, took.Round(time.Millisecond), before.Round(time.Millisecond), after.Round(time.Millisecond),
			took.Seconds()/r.base.Seconds(), bytes, float64(bytes)/float64(rows))
		return r
	}
	sql := measure("analyze_overlap", func() api.Overlap {
		var o api.Overlap
		err := t.Pool(b, "").QueryRow(context.Background(), `SELECT identical, conflicting, local_only, peer_only
			FROM steep_repl.analyze_overlap('node_a', ARRAY['big'])`).Scan(&o.Identical, &o.Conflicting, &o.LocalOnly, &o.PeerOnly)
		if err != nil {
			b.Fatal(err)
		}
		return o
	})
	// The streaming path as steep-repl analyze-overlap runs it: this node's session and one to the
	// peer through the proxy (as --peer-db gives it).
	streaming := func(mode overlap.Mode) func() api.Overlap {
		return func() api.Overlap {
			ctx := context.Background()
			local, err := pgx.Connect(ctx, t.ConnString(""))
			if err != nil {
				b.Fatal(err)
			}
			defer local.Close(ctx)
			out, err := overlap.Analyze(ctx, local, func(ctx context.Context) (*pgx.Conn, error) {
				cfg, err := dbconn.PeerConfig(fmt.Sprintf("host=127.0.0.1 port=%d dbname=postgres user=postgres", proxy.Port()), "bench")
				if err != nil {
					return nil, err
				}
				return pgx.ConnectConfig(ctx, cfg)
			}, "node_a", []string{"big"}, mode)
			if err != nil || len(out) != 1 {
				b.Fatalf("streaming analysis: %v %v", out, err)
			}
			return out[0]
		}
	}
	chunked := measure("streaming, key_hash_chunks (one C scan, ~64 kB a COPY row)", streaming(overlap.Chunked))
	agg := measure("streaming, the SQL stream (one COPY row per 32-block TID range)", streaming(overlap.Aggregated))
	perRow := measure("streaming, one COPY row per table row", streaming(overlap.PerRow))
	for _, m := range []struct {
		name string
		r    result
	}{{"sql", sql}, {"stream", chunked}, {"stream_sql_ranges", agg}, {"stream_per_row", perRow}} {
		b.ReportMetric(m.r.took.Seconds(), m.name+"_s")
		b.ReportMetric(m.r.took.Seconds()/m.r.base.Seconds(), m.name+"_vs_floor_x")
		b.ReportMetric(float64(m.r.bytes)/float64(rows), m.name+"_peer_bytes/row")
	}
	b.ReportMetric(chunked.base.Seconds(), "hash_floor_s")
}

// loadBigDiffering creates bench-data's big on both nodes with rows rows, 1% of them differing:
// on t every 200th row changed, every 400th (offset 7) deleted, and as many new ones only there.
func loadBigDiffering(b *testing.B, a, t *harness.Node, rows int) {
	for _, n := range []*harness.Node{a, t} {
		n.Exec(b, "", `CREATE TABLE big (id bigint PRIMARY KEY, account int NOT NULL, note text NOT NULL, at timestamptz NOT NULL)`)
		n.Exec(b, "", `INSERT INTO big SELECT g, g % 100000, md5(g::text) || md5((g * 7)::text) || md5((g * 13)::text),
			'2026-01-01'::timestamptz + g * interval '1 second' FROM generate_series(1, $1) g`, rows)
	}
	t.Exec(b, "", "UPDATE big SET note = note || '!' WHERE id % 200 = 0")
	t.Exec(b, "", "DELETE FROM big WHERE id % 400 = 7")
	t.Exec(b, "", "INSERT INTO big SELECT $1::bigint + g, 0, 'b only', now() FROM generate_series(1, $1::bigint / 400) g", rows)
	for _, n := range []*harness.Node{a, t} {
		n.Exec(b, "", "VACUUM ANALYZE big")
	}
}

// hashFloor is the server's own hash floor: COPY (SELECT id, row_hash(t) FROM big t) TO
// '/dev/null' on every node at once.
func hashFloor(b *testing.B, nodes []*harness.Node) time.Duration {
	var wg sync.WaitGroup
	start := time.Now()
	for _, n := range nodes {
		wg.Go(func() { n.Exec(b, "", "COPY (SELECT id, steep_repl.row_hash(t) FROM big t) TO '/dev/null'") })
	}
	wg.Wait()
	return time.Since(start)
}
