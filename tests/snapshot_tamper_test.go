package tests

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/steepdb/steep_repl/tests/harness"
)

// copyDir copies a snapshot directory (flat) so each case tampers with its own copy.
func copyDir(t *testing.T, src string) string {
	t.Helper()
	dst := filepath.Join(t.TempDir(), filepath.Base(src))
	if out, err := exec.Command("cp", "-r", src, dst).CombinedOutput(); err != nil {
		t.Fatalf("cp: %v: %s", err, out)
	}
	return dst
}

func TestSnapshotApplyRefusesAFlippedByteAndNamesTheTable(t *testing.T) {
	t.Parallel()
	p := setupSnapPair(t)
	for _, compression := range []string{"none", "zstd"} {
		dir := filepath.Join(filepath.Dir(p.dir), "snap_"+compression)
		generateSnapshot(t, p.a, dir, `{"compression": "`+compression+`", "subscribable": false}`)
		m := readManifest(t, dir)
		var file string
		for _, tb := range m.Tables {
			if tb.Name == "track" {
				file = filepath.Join(dir, tb.File)
			}
		}
		b, err := os.ReadFile(file)
		if err != nil {
			t.Fatal(err)
		}
		b[len(b)/2] ^= 0x04
		if err := os.WriteFile(file, b, 0o644); err != nil {
			t.Fatal(err)
		}
		b[len(b)/2] ^= 0x04 // the good bytes, put back below
		job := applySnapshot(t, p.b, dir, `{}`, "failed")
		msg := jobError(t, p.b, job)
		if !strings.Contains(msg, "public.track") || !strings.Contains(msg, "checksum mismatch") {
			t.Fatalf("%s: the error does not name the table and the checksum: %s", compression, msg)
		}
		// The schema was restored whole (pg_restore pre-data); nothing of track's file was loaded.
		if harness.QueryOne[bool](t, p.b, "", "SELECT EXISTS (SELECT 1 FROM public.track)") {
			t.Fatalf("%s: public.track holds rows after a refused load", compression)
		}
		if n := harness.QueryOne[int64](t, p.b, "", `SELECT count(*) FROM steep_repl.snapshot_apply_tables t
			JOIN steep_repl.snapshot_applies a ON a.id = t.apply_id WHERE a.job_id = $1 AND t.table_name = 'track'`, job); n != 0 {
			t.Fatalf("%s: track recorded as loaded", compression)
		}
		got := harness.QueryOne[string](t, p.b, "", "SELECT format('%s failed, %s verified', checksums_failed, checksums_verified) FROM steep_repl.snapshot_progress WHERE job_id = $1", job)
		if got != "1 failed, 10 verified" {
			t.Fatalf("%s: progress says %s", compression, got)
		}
		// The failed apply restored the schema's pre-data, not its post-data: a new apply of
		// the repaired snapshot finishes it (indexes and constraints included).
		if err := os.WriteFile(file, b, 0o644); err != nil {
			t.Fatal(err)
		}
		applySnapshot(t, p.b, dir, `{"truncate": true}`, "succeeded")
		harness.AssertEqual(t, p.a, p.b, "")
		cons := `SELECT string_agg(d, E'\n' ORDER BY d) FROM (SELECT conrelid::regclass || ' ' || conname || ' ' || pg_get_constraintdef(oid) d
			FROM pg_constraint WHERE connamespace = 'public'::regnamespace UNION ALL SELECT indexdef FROM pg_indexes WHERE schemaname = 'public') x`
		if ca, cb := harness.QueryOne[string](t, p.a, "", cons), harness.QueryOne[string](t, p.b, "", cons); ca != cb {
			t.Fatalf("%s: constraints and indexes differ after the second apply:\nsource\n%s\ntarget\n%s", compression, ca, cb)
		}
		emptyPublicSchema(t, p.b)
	}
}

func TestSnapshotApplyRefusesManifestPathsOutsideTheDirectory(t *testing.T) {
	t.Parallel()
	p := setupSnapPair(t)
	generateSnapshot(t, p.a, p.dir, `{"subscribable": false}`)
	outside := filepath.Join(filepath.Dir(p.dir), "x")
	if err := os.WriteFile(outside, []byte("1\tstolen\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, bad := range []string{"../x", outside} {
		dir := copyDir(t, p.dir)
		m := readManifest(t, dir)
		m.Tables[len(m.Tables)-1].File = bad
		writeRawManifest(t, dir, m)
		job := applySnapshot(t, p.b, dir, `{}`, "failed")
		msg := jobError(t, p.b, job)
		if !strings.Contains(msg, "manifest") || !strings.Contains(msg, bad) {
			t.Fatalf("%s: error %q", bad, msg)
		}
		// Refused before anything was read: no table created, nothing loaded, no checksum verified.
		if n := harness.QueryOne[int64](t, p.b, "", "SELECT count(*) FROM pg_tables WHERE schemaname = 'public'"); n != 0 {
			t.Fatalf("%s: %d tables created", bad, n)
		}
		got := harness.QueryOne[string](t, p.b, "", "SELECT format('%s %s', checksums_verified, step) FROM steep_repl.snapshot_progress WHERE job_id = $1", job)
		if got != "0 failed" {
			t.Fatalf("%s: progress %q", bad, got)
		}
	}
	// A symlink leading out of the directory is refused too, naming the file.
	dir := copyDir(t, p.dir)
	m := readManifest(t, dir)
	victim := filepath.Join(dir, m.Tables[0].File)
	os.Remove(victim)
	if err := os.Symlink(outside, victim); err != nil {
		t.Fatal(err)
	}
	job := applySnapshot(t, p.b, dir, `{}`, "failed")
	if msg := jobError(t, p.b, job); !strings.Contains(msg, "symlink") || !strings.Contains(msg, m.Tables[0].File) {
		t.Fatalf("symlink: error %q", msg)
	}
}
