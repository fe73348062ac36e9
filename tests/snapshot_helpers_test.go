package tests

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/steepdb/steep_repl/internal/snapshot"
	"github.com/steepdb/steep_repl/tests/harness"
)

// snapPair is a source (node_a, Chinook loaded) and an empty target (node_b, no tables), both
// registered on both, each with its sidecar, and a directory both see.
type snapPair struct {
	a, b       *harness.Node
	carA, carB *sidecar
	dir        string
}

func setupSnapPair(t *testing.T) *snapPair {
	t.Helper()
	a, b := setupEmptyPair(t)
	harness.LoadChinook(t, a, "")
	a.Exec(t, "", "ANALYZE")
	return &snapPair{a: a, b: b, carA: startSidecar(t, a, "sidecar_a"), carB: startSidecar(t, b, "sidecar_b"),
		dir: filepath.Join(t.TempDir(), "snap")}
}

// generate queues a snapshot of n into dir and waits for it; it returns the snapshot id.
func generateSnapshot(t *testing.T, n *harness.Node, dir, options string) string {
	t.Helper()
	id := harness.QueryOne[string](t, n, "", "SELECT steep_repl.generate_snapshot($1, $2)", dir, options)
	job := harness.QueryOne[int64](t, n, "", "SELECT job_id FROM steep_repl.snapshots WHERE id = $1", id)
	waitJobDone(t, n, job, "succeeded", 120*time.Second)
	return id
}

// applySnapshot queues the apply of dir on n and waits for its job to end in state want.
func applySnapshot(t *testing.T, n *harness.Node, dir, options, want string) int64 {
	t.Helper()
	job := harness.QueryOne[int64](t, n, "", "SELECT steep_repl.apply_snapshot($1, $2)", dir, options)
	waitJobDone(t, n, job, want, 120*time.Second)
	return job
}

// waitJobDone waits until job is finalized and fails the test unless it ended in want.
func waitJobDone(t *testing.T, n *harness.Node, job int64, want string, timeout time.Duration) {
	t.Helper()
	var state, errText string
	n.WaitFor(t, timeout, fmt.Sprintf("job %d finished", job), func() bool {
		state = harness.QueryOne[string](t, n, "", "SELECT state FROM steep_repl.jobs WHERE id = $1", job)
		errText = harness.QueryOne[string](t, n, "", "SELECT coalesce(error, '') FROM steep_repl.jobs WHERE id = $1", job)
		return state == "succeeded" || state == "failed" || state == "cancelled"
	})
	if state != want {
		t.Fatalf("job %d ended %s, want %s: %s", job, state, want, errText)
	}
}

// jobError returns a finished job's error text.
func jobError(t *testing.T, n *harness.Node, job int64) string {
	t.Helper()
	return harness.QueryOne[string](t, n, "", "SELECT coalesce(error, '') FROM steep_repl.jobs WHERE id = $1", job)
}

// sequenceValues lists every user sequence of n with its state.
func sequenceValues(t *testing.T, n *harness.Node) string {
	t.Helper()
	return harness.QueryOne[string](t, n, "", `SELECT coalesce(string_agg(format('%s.%s=%s', schemaname, sequencename,
		coalesce(last_value::text, 'unset')), ' ' ORDER BY schemaname, sequencename), '')
		FROM pg_sequences WHERE schemaname <> 'steep_repl'`)
}

// readManifest reads dir's manifest (failing the test when it is invalid).
func readManifest(t *testing.T, dir string) *snapshot.Manifest {
	t.Helper()
	m, err := snapshot.ReadManifest(dir)
	if err != nil {
		t.Fatalf("manifest: %v", err)
	}
	return m
}

// writeRawManifest replaces dir's manifest with m as is (no validation), for tampering tests.
func writeRawManifest(t *testing.T, dir string, m *snapshot.Manifest) {
	t.Helper()
	b, err := json.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, snapshot.ManifestName), b, 0o644); err != nil {
		t.Fatal(err)
	}
}

// emptyPublicSchema drops every table and sequence of schema public on the target (not the
// schema: extensions live there) so the next apply creates them again.
func emptyPublicSchema(t *testing.T, n *harness.Node) {
	t.Helper()
	n.Exec(t, "", `DO $$ DECLARE r record; BEGIN
		FOR r IN SELECT format('%I.%I', schemaname, tablename) t FROM pg_tables WHERE schemaname = 'public' LOOP
			EXECUTE 'DROP TABLE IF EXISTS ' || r.t || ' CASCADE';
		END LOOP;
		FOR r IN SELECT format('%I.%I', schemaname, sequencename) s FROM pg_sequences WHERE schemaname = 'public' LOOP
			EXECUTE 'DROP SEQUENCE IF EXISTS ' || r.s || ' CASCADE';
		END LOOP; END $$`)
}

// assertTablesEqual compares only the named tables of a and b by row hash.
func assertTablesEqual(t *testing.T, a, b *harness.Node, tables ...string) {
	t.Helper()
	rep, err := harness.Compare(context.Background(), a.Pool(t, ""), b.Pool(t, ""), harness.CompareOptions{Tables: tables})
	if err != nil {
		t.Fatalf("compare: %v", err)
	}
	if !rep.Equal() {
		t.Fatalf("tables %v differ:\n%s", tables, rep)
	}
}

// userRowCount sums the rows of every table of schema public on n.
func userRowCount(t *testing.T, n *harness.Node) int64 {
	t.Helper()
	return harness.QueryOne[int64](t, n, "", `SELECT coalesce(sum((xpath('/row/c/text()',
		query_to_xml(format('SELECT count(*) AS c FROM %I.%I', schemaname, tablename), false, true, '')))[1]::text::bigint), 0)
		FROM pg_tables WHERE schemaname = 'public'`)
}

// assertRowsEqual compares the rows of the named tables ("schema.table", quoted as needed) of
// a and b as sorted multisets of their text, whatever their constraints.
func assertRowsEqual(t *testing.T, a, b *harness.Node, tables ...string) {
	t.Helper()
	for _, tb := range tables {
		q := "SELECT count(*) || ' ' || coalesce(md5(string_agg(r::text, E'\\n' ORDER BY r::text)), '') FROM " + tb + " r"
		if ra, rb := harness.QueryOne[string](t, a, "", q), harness.QueryOne[string](t, b, "", q); ra != rb {
			t.Fatalf("rows of %s differ: %s on %s, %s on %s", tb, ra, a.Name, rb, b.Name)
		}
	}
}
