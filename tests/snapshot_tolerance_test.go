package tests

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/steepdb/steep_repl/internal/snapshot"
	"github.com/steepdb/steep_repl/tests/harness"
)

// addBadRows rewrites table name's file with n malformed rows appended, as a source whose
// data the target's types reject would produce, and makes the manifest (rows, sizes,
// checksum) match, so only the rows are wrong.
func addBadRows(t *testing.T, dir, name string, n int) {
	t.Helper()
	m := readManifest(t, dir)
	for i := range m.Tables {
		tb := &m.Tables[i]
		if tb.Name != name {
			continue
		}
		r, err := snapshot.OpenFile(dir, tb.File, m.Compression)
		if err != nil {
			t.Fatal(err)
		}
		var data bytes.Buffer
		if _, err := data.ReadFrom(r); err != nil {
			t.Fatal(err)
		}
		r.Finish()
		data.WriteString(strings.Repeat("not-a-number\t7\n", n))
		os.Remove(filepath.Join(dir, tb.File))
		w, err := snapshot.CreateFile(dir, tb.File, m.Compression)
		if err != nil {
			t.Fatal(err)
		}
		w.Write(data.Bytes())
		res, err := w.Close()
		if err != nil {
			t.Fatal(err)
		}
		tb.Rows += int64(n)
		tb.RawBytes, tb.FileBytes, tb.SHA256 = res.RawBytes, res.FileBytes, res.SHA256
	}
	if err := snapshot.WriteManifest(dir, m); err != nil {
		t.Fatal(err)
	}
}

func TestSnapshotErrorToleranceSkipsNBadRowsAndFailsOnNPlusOne(t *testing.T) {
	t.Parallel()
	p := setupSnapPair(t)
	// On 18 REJECT_LIMIT stops the COPY past the tolerance; on 17 ON_ERROR ignore skips every
	// bad row and the apply compares the rows loaded with the manifest's count instead.
	p.a.Exec(t, "", "CREATE TABLE measure (id int PRIMARY KEY, n int NOT NULL)")
	p.a.Exec(t, "", "INSERT INTO measure SELECT g, g % 10 FROM generate_series(1, 1000) g")
	generateSnapshot(t, p.a, p.dir, `{"tables": ["measure"], "subscribable": false}`)
	const bad = 3
	addBadRows(t, p.dir, "measure", bad)

	job := applySnapshot(t, p.b, p.dir, `{"error_tolerance": 3}`, "succeeded")
	got := harness.QueryOne[string](t, p.b, "", `SELECT format('%s rows, %s skipped', t.rows, t.tuples_skipped)
		FROM steep_repl.snapshot_apply_tables t JOIN steep_repl.snapshot_applies a ON a.id = t.apply_id WHERE a.job_id = $1`, job)
	if got != "1000 rows, 3 skipped" {
		t.Fatalf("apply with tolerance %d: %s", bad, got)
	}
	if n := harness.QueryOne[int64](t, p.b, "", "SELECT tuples_skipped FROM steep_repl.snapshot_progress WHERE job_id = $1", job); n != bad {
		t.Fatalf("progress reports %d tuples skipped", n)
	}
	if n := harness.QueryOne[int64](t, p.b, "", "SELECT tuples_skipped FROM steep_repl.list_snapshots() WHERE role = 'applied'"); n != bad {
		t.Fatalf("the apply report (list_snapshots) says %d tuples skipped", n)
	}
	assertTablesEqual(t, p.a, p.b, "measure")

	for _, tol := range []string{"2", "0"} {
		emptyPublicSchema(t, p.b)
		job = applySnapshot(t, p.b, p.dir, `{"error_tolerance": `+tol+`}`, "failed")
		if msg := jobError(t, p.b, job); !strings.Contains(msg, "public.measure") {
			t.Fatalf("tolerance %s: error does not name the table: %s", tol, msg)
		}
		// The schema was restored whole (pg_restore pre-data); nothing of measure's file was loaded.
		if harness.QueryOne[bool](t, p.b, "", "SELECT EXISTS (SELECT 1 FROM public.measure)") {
			t.Fatalf("tolerance %s: measure holds rows although its load failed", tol)
		}
	}
}
