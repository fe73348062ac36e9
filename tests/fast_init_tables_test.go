package tests

import (
	"context"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/steepdb/steep_repl/tests/harness"
)

// oidsOfMeasIndexes: the oids of meas's primary key, then of its other partitioned indexes and their partitions'.
const oidsOfMeasIndexes = `SELECT 'meas_pkey'::regclass::oid || ' ' || string_agg(x::oid::text, ',' ORDER BY x::text)
	FROM unnest(ARRAY['meas_v', 'meas_v_at', 'meas_2024_v_idx', 'meas_2025_v_at_key', 'meas_rest_v_idx']::regclass[]) x`

// A partitioned table (its partitions, one of them split into block ranges, and a default
// one) is copied by a fast init: equal by row hash, and its partitioned index and unique
// constraint, dropped for the load from the parent with those of its partitions, are back.
func TestFastInitCopiesAPartitionedTableAndRestoresItsPartitionedIndexes(t *testing.T) {
	t.Parallel()
	p := setupPair(t)
	for _, n := range []*harness.Node{p.a, p.b} {
		n.Exec(t, "", `CREATE TABLE meas (id int NOT NULL, at date NOT NULL, v text NOT NULL, PRIMARY KEY (id, at)) PARTITION BY RANGE (at)`)
		n.Exec(t, "", `CREATE TABLE meas_2024 PARTITION OF meas FOR VALUES FROM ('2024-01-01') TO ('2025-01-01')`)
		n.Exec(t, "", `CREATE TABLE meas_2025 PARTITION OF meas FOR VALUES FROM ('2025-01-01') TO ('2026-01-01')`)
		n.Exec(t, "", `CREATE TABLE meas_rest PARTITION OF meas DEFAULT`)
		n.Exec(t, "", `CREATE INDEX meas_v ON meas (v)`)
		n.Exec(t, "", `ALTER TABLE meas ADD CONSTRAINT meas_v_at UNIQUE (v, at)`)
	}
	p.a.Exec(t, "", `INSERT INTO meas SELECT g, date '2024-01-01' + (g % 900), md5(g::text) FROM generate_series(1, 30000) g`)
	catalog := targetCatalog(t, p)
	oidsBefore := harness.QueryOne[string](t, p.b, "", oidsOfMeasIndexes)
	if !strings.Contains(catalog, "meas_2024_v_idx") || !strings.Contains(catalog, "meas_v_at") {
		t.Fatalf("the partitions' indexes are not in the catalog:\n%s", catalog)
	}
	p.startFastInit(t, `{"parallel": 2, "split_threshold": 65536, "copy_format": "text"}`)
	p.waitState(t, "synchronized", 120*time.Second)
	p.waitEqual(t, 60*time.Second)
	assertCatalogRestored(t, p, catalog)
	if binary, _ := copyFormatEvent(t, p.car); binary != 0 {
		t.Fatalf("copy_format text copied %d tables in binary", binary)
	}
	if n := harness.QueryOne[int64](t, p.b, "", `SELECT count(*) FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid
		WHERE c.relname IN ('meas_v', 'meas_v_at', 'meas_pkey') AND c.relkind = 'I' AND i.indisvalid`); n != 3 {
		t.Fatalf("%d of the 3 partitioned indexes of meas are valid after the init", n)
	}
	if chunks := harness.QueryOne[int64](t, p.b, "", "SELECT chunks_total FROM steep_repl.init_tables WHERE node = 'node_b' AND table_name = 'meas_2024'"); chunks < 2 {
		t.Fatalf("meas_2024 was copied in %d chunks, want it split", chunks)
	}
	// Dropped from the parent and rebuilt whole: the partitioned index and constraint, and the
	// partitions' indexes attached to them, are new; so is the primary key (its partitions
	// together are above split_threshold, as a large table's).
	if after := harness.QueryOne[string](t, p.b, "", oidsOfMeasIndexes); after == oidsBefore {
		t.Fatalf("the indexes of meas were not rebuilt (oids %s before and after)", after)
	} else if keyOf := func(s string) string { return strings.Split(s, " ")[0] }; keyOf(after) == keyOf(oidsBefore) {
		t.Fatalf("the primary key of meas was kept (%s, then %s): its partitions together are above split_threshold", oidsBefore, after)
	}
	p.a.Exec(t, "", `UPDATE meas SET v = md5(v) WHERE id % 7 = 0`)
	p.a.Exec(t, "", `DELETE FROM meas WHERE id % 11 = 0`)
	p.waitEqual(t, 60*time.Second)
}

// A table without a primary key but with REPLICA IDENTITY FULL (and duplicate rows) is copied
// by a fast init under a write load of updates and deletes on the source: the nodes end equal
// (rows compared as a multiset of whole rows), its index back.
func TestFastInitCopiesAReplicaIdentityFullTableWithoutKeyUnderUpdatesAndDeletes(t *testing.T) {
	t.Parallel()
	p := setupPair(t)
	for _, n := range []*harness.Node{p.a, p.b} {
		n.Exec(t, "", `CREATE TABLE nokey (k int NOT NULL, v text NOT NULL, n int NOT NULL)`)
		n.Exec(t, "", `ALTER TABLE nokey REPLICA IDENTITY FULL`)
		n.Exec(t, "", `CREATE INDEX nokey_k ON nokey (k)`)
	}
	// Every k twice, so some rows are identical.
	p.a.Exec(t, "", `INSERT INTO nokey SELECT g % 15000, md5((g % 15000)::text), 0 FROM generate_series(1, 30000) g`)
	catalog := targetCatalog(t, p)
	pool := p.a.Pool(t, "")
	var writes atomic.Int64
	var wg sync.WaitGroup
	stop := make(chan struct{})
	wg.Go(func() {
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			case <-time.After(3 * time.Millisecond):
			}
			sql := "UPDATE nokey SET n = n + 1, v = md5(v) WHERE k = $1"
			if i%5 == 0 {
				sql = "DELETE FROM nokey WHERE k = $1"
			}
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			if _, err := pool.Exec(ctx, sql, (i*7919)%15000); err == nil {
				writes.Add(1)
			}
			cancel()
		}
	})
	before := waitWrites(t, p.a, &writes, 50, "before the init starts")
	p.startFastInit(t, `{"parallel": 2, "split_threshold": 65536, "maintenance_work_mem": "64MB", "max_parallel_maintenance_workers": 0}`)
	p.waitState(t, "synchronized", 120*time.Second)
	synced := writes.Load()
	after := waitWrites(t, p.a, &writes, 50, "after the init") - synced
	close(stop)
	wg.Wait()
	assertWritesInEveryPhase(t, before, synced-before, after)
	p.waitEqual(t, 60*time.Second)
	assertCatalogRestored(t, p, catalog)
	if _, _, _, settings, _ := indexingRow(t, p); settings != "64MB 0" {
		t.Fatalf("the indexes were rebuilt with %q, want the options' maintenance_work_mem 64MB and max_parallel_maintenance_workers 0", settings)
	}
	if chunks := harness.QueryOne[int64](t, p.b, "", "SELECT chunks_total FROM steep_repl.init_tables WHERE node = 'node_b' AND table_name = 'nokey'"); chunks < 2 {
		t.Fatalf("nokey was copied in %d chunks, want it split", chunks)
	}
}
