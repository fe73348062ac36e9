package tests

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgconn"

	"github.com/steepdb/steep_repl/internal/snapshot"
	"github.com/steepdb/steep_repl/tests/harness"
)

// Snapshot files under the trust boundary: the sidecar (root on its host, in CI too) must never
// read or write a file outside the snapshot root for an operator who is a member of
// steep_repl_admin but not a superuser, and never follows a symlink planted in a snapshot
// directory.

// setSnapshotRoot sets steep_repl.snapshot_root on n (ALTER SYSTEM, reload) and waits until a
// session sees it.
func setSnapshotRoot(t *testing.T, n *harness.Node, root string) {
	t.Helper()
	n.Exec(t, "", "ALTER SYSTEM SET steep_repl.snapshot_root = '"+root+"'")
	n.Exec(t, "", "SELECT pg_reload_conf()")
	n.WaitFor(t, 10*time.Second, "steep_repl.snapshot_root set", func() bool {
		return harness.QueryOne[string](t, n, "", "SELECT current_setting('steep_repl.snapshot_root')") == root
	})
}

// asAlice runs sql as alice (LOGIN, member of steep_repl_admin, created when missing) and
// returns its SQLSTATE, message and hint ("" when it succeeded).
func asAlice(t *testing.T, n *harness.Node, sql string, args ...any) (code, msg, hint string) {
	t.Helper()
	if !harness.QueryOne[bool](t, n, "", "SELECT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'alice')") {
		n.Exec(t, "", "CREATE ROLE alice LOGIN IN ROLE steep_repl_admin")
	}
	conn := connectAs(t, n, "alice")
	_, err := conn.Exec(context.Background(), sql, args...)
	if err == nil {
		return "", "", ""
	}
	var e *pgconn.PgError
	if !asPgError(err, &e) {
		t.Fatalf("%s as alice: not a PostgreSQL error: %v", sql, err)
	}
	return e.Code, e.Message, e.Hint
}

func TestSnapshotSecurityPathsOutsideTheRootAreRefusedForOperators(t *testing.T) {
	t.Parallel()
	a, _ := setupEmptyPair(t)
	a.Exec(t, "", "CREATE TABLE t (id int PRIMARY KEY); INSERT INTO t VALUES (1)")
	base := t.TempDir()
	root := filepath.Join(base, "root")
	exists := filepath.Join(base, "outside") // a directory that exists, outside the root
	os.Mkdir(exists, 0o700)
	missing := filepath.Join(base, "nowhere", "x")
	generate := "SELECT steep_repl.generate_snapshot($1, '{\"subscribable\": false}')"

	// No root: only a superuser may name a path; the operator is told why and what the DBA sets.
	for _, sql := range []string{generate, "SELECT steep_repl.apply_snapshot($1)"} {
		code, msg, hint := asAlice(t, a, sql, exists)
		if code != "42501" || !strings.Contains(hint, "steep_repl.snapshot_root") || !strings.Contains(hint, "--snapshot-root") {
			t.Fatalf("no root, %s as alice: %s %s (hint %q)", sql, code, msg, hint)
		}
	}
	if code, _ := sqlState(t, a, generate, filepath.Join(base, "by_postgres")); code != "" {
		t.Fatalf("no root: a superuser may still name a path, got %s", code)
	}

	// An operator may not set the root herself, not even as a placeholder.
	if code, msg, _ := asAlice(t, a, "SET steep_repl.snapshot_root = '/'"); code != "42501" {
		t.Fatalf("alice set the snapshot root: %s %s", code, msg)
	}

	setSnapshotRoot(t, a, root)
	refusals := map[string]string{}
	for _, path := range []string{exists, missing, root, "/etc", root + "x/y"} {
		for _, sql := range []string{generate, "SELECT steep_repl.apply_snapshot($1)",
			"SELECT steep_repl.start_init('node_a', 'node_b', 'two_phase', jsonb_build_object('path', $1::text))"} {
			code, msg, hint := asAlice(t, a, sql, path)
			if code != "42501" || !strings.Contains(hint, root) {
				t.Fatalf("%s as alice with %s: %s %s (hint %q)", sql, path, code, msg, hint)
			}
			refusals[path] = strings.ReplaceAll(msg, path, "P") + " / " + hint
		}
	}
	// Nothing was looked up on disk: an existing and a missing path are refused alike.
	if refusals[exists] != refusals[missing] {
		t.Fatalf("the refusal tells an existing path from a missing one:\n%s\n%s", refusals[exists], refusals[missing])
	}
	if code, _, _ := asAlice(t, a, generate, root+"/../etc"); code != "22023" {
		t.Fatalf("a .. component: %s", code)
	}
	// The root binds the superuser too.
	if code, _ := sqlState(t, a, generate, exists); code != "42501" {
		t.Fatalf("postgres outside the root: %s", code)
	}
	// Beneath the root the operator may generate.
	if code, msg, _ := asAlice(t, a, generate, filepath.Join(root, "team", "s1")); code != "" {
		t.Fatalf("alice beneath the root: %s %s", code, msg)
	}
	if harness.QueryOne[bool](t, a, "", "SELECT rolsuper FROM pg_roles WHERE rolname = 'alice'") {
		t.Fatal("alice became superuser")
	}
}

// An operator's whole flow under a root on both nodes: the sidecars get the same
// --snapshot-root, directories are made 0700 and files 0600, and a job for a directory
// outside the sidecar's root (here named by a superuser while the node had no root) is refused
// before anything is created.
func TestSnapshotSecurityOperatorFlowUnderTheRootWithPrivateModes(t *testing.T) {
	t.Parallel()
	a, b := setupEmptyPair(t)
	harness.LoadChinook(t, a, "")
	base := t.TempDir()
	root := filepath.Join(base, "root")
	os.Mkdir(root, 0o755)
	startSidecar(t, a, "sidecar_a", "--snapshot-root", root)
	startSidecar(t, b, "sidecar_b", "--snapshot-root", root)

	outside := filepath.Join(base, "outside")
	id := harness.QueryOne[string](t, a, "", "SELECT steep_repl.generate_snapshot($1, '{\"subscribable\": false}')", outside)
	job := harness.QueryOne[int64](t, a, "", "SELECT job_id FROM steep_repl.snapshots WHERE id = $1", id)
	waitJobDone(t, a, job, "failed", 60*time.Second)
	if msg := jobError(t, a, job); !strings.Contains(msg, "not beneath the sidecar's snapshot root") {
		t.Fatalf("outside the sidecar's root: %s", msg)
	}
	if _, err := os.Lstat(outside); !os.IsNotExist(err) {
		t.Fatalf("the refused directory was created: %v", err)
	}

	setSnapshotRoot(t, a, root)
	setSnapshotRoot(t, b, root)
	dir := filepath.Join(root, "team", "s1")
	code, msg, _ := asAlice(t, a, "SELECT steep_repl.generate_snapshot($1, '{\"subscribable\": false}')", dir)
	if code != "" {
		t.Fatalf("generate as alice: %s %s", code, msg)
	}
	id = harness.QueryOne[string](t, a, "", "SELECT id FROM steep_repl.snapshots WHERE path = $1", dir)
	waitJobDone(t, a, harness.QueryOne[int64](t, a, "", "SELECT job_id FROM steep_repl.snapshots WHERE id = $1", id), "succeeded", 120*time.Second)
	for _, d := range []string{filepath.Join(root, "team"), dir} {
		if st, err := os.Stat(d); err != nil || st.Mode().Perm() != 0o700 {
			t.Fatalf("%s: %v %v, want mode 0700", d, st.Mode(), err)
		}
	}
	entries, _ := os.ReadDir(dir)
	for _, e := range entries {
		st, _ := os.Lstat(filepath.Join(dir, e.Name()))
		if !st.Mode().IsRegular() || st.Mode().Perm() != 0o600 {
			t.Fatalf("%s: mode %v, want a regular file 0600", e.Name(), st.Mode())
		}
	}
	if len(entries) != harness.ChinookTables+2 {
		t.Fatalf("%d entries in the snapshot directory, want the tables, the schema archive and the manifest", len(entries))
	}
	// The apply restores the schema as alice (pg_restore --role): she needs to be able to
	// create the tables, and owns them.
	b.Exec(t, "", `DO $$ BEGIN IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'alice') THEN
		CREATE ROLE alice LOGIN IN ROLE steep_repl_admin; END IF; END $$; GRANT CREATE ON SCHEMA public TO alice`)
	if code, msg, _ = asAlice(t, b, "SELECT steep_repl.apply_snapshot($1)", dir); code != "" {
		t.Fatalf("apply as alice: %s %s", code, msg)
	}
	job = harness.QueryOne[int64](t, b, "", "SELECT max(job_id) FROM steep_repl.snapshot_applies")
	waitJobDone(t, b, job, "succeeded", 120*time.Second)
	harness.AssertEqual(t, a, b, "")
	if others := harness.QueryOne[string](t, b, "", "SELECT coalesce(string_agg(tablename || '=' || tableowner, ', '), '') FROM pg_tables WHERE schemaname = 'public' AND tableowner <> 'alice'"); others != "" {
		t.Fatalf("tables alice's apply restored that are not hers: %s", others)
	}
}

func TestSnapshotSecuritySymlinkPlantedDuringGenerateIsNotFollowed(t *testing.T) {
	t.Parallel()
	p := setupSnapPair(t)
	outside := t.TempDir()
	id := harness.QueryOne[string](t, p.a, "", "SELECT steep_repl.generate_snapshot($1, $2)", p.dir,
		`{"parallel": 1, "subscribable": false, `+slowRate+`}`)
	job := harness.QueryOne[int64](t, p.a, "", "SELECT job_id FROM steep_repl.snapshots WHERE id = $1", id)
	p.a.WaitFor(t, 60*time.Second, "a table written", func() bool {
		return harness.QueryOne[int64](t, p.a, "", "SELECT count(*) FROM steep_repl.snapshot_tables WHERE snapshot_id = $1 AND state = 'done'", id) >= 1
	})
	pending := harness.QueryOne[[]string](t, p.a, "", "SELECT array_agg(file) FROM steep_repl.snapshot_tables WHERE snapshot_id = $1 AND state = 'pending'", id)
	if len(pending) < 2 {
		t.Fatalf("the generation went too fast to plant anything (%d pending)", len(pending))
	}
	planted := 0
	for _, f := range append(pending, snapshot.ManifestName+".tmp", snapshot.ManifestName) {
		for _, name := range []string{f, f + ".partial"} {
			if os.Symlink(filepath.Join(outside, name), filepath.Join(p.dir, name)) == nil {
				planted++
			}
		}
	}
	if planted == 0 {
		t.Fatal("no symlink could be planted")
	}
	waitJobDone(t, p.a, job, "failed", 120*time.Second)
	if msg := jobError(t, p.a, job); !strings.Contains(msg, "symbolic link") || strings.Contains(msg, outside) {
		t.Fatalf("generate with planted symlinks: %s", msg)
	}
	if entries, _ := os.ReadDir(outside); len(entries) != 0 {
		t.Fatalf("files appeared at the symlinks' targets: %v", entries)
	}
}

func TestSnapshotSecuritySymlinkSwappedDuringApplyIsNotFollowed(t *testing.T) {
	t.Parallel()
	p := setupSnapPair(t)
	generateSnapshot(t, p.a, p.dir, `{"subscribable": false, "compression": "none"}`)
	m := readManifest(t, p.dir)
	victim := m.Tables[0]
	for _, tb := range m.Tables {
		if tb.RawBytes < victim.RawBytes {
			victim = tb // loaded last: the plan hands out the largest first
		}
	}
	// The attacker's directory: the same snapshot with every table file changed, so reading any
	// file through the swapped path fails its checksum.
	evil := copyDir(t, p.dir)
	for _, tb := range m.Tables {
		path := filepath.Join(evil, tb.File)
		b, _ := os.ReadFile(path)
		if len(b) > 0 {
			b[len(b)/2] ^= 0x01
		}
		os.WriteFile(path, b, 0o600)
	}
	// The symlink's target: an exact copy of the victim's file, which would pass verification.
	secret := filepath.Join(t.TempDir(), "secret.copy")
	if out, err := exec.Command("cp", filepath.Join(p.dir, victim.File), secret).CombinedOutput(); err != nil {
		t.Fatalf("cp: %v %s", err, out)
	}

	job := harness.QueryOne[int64](t, p.b, "", "SELECT steep_repl.apply_snapshot($1, $2)", p.dir, `{"parallel": 1, `+slowRate+`}`)
	p.b.WaitFor(t, 60*time.Second, "a table loaded", func() bool {
		return harness.QueryOne[int64](t, p.b, "", "SELECT count(*) FROM steep_repl.snapshot_apply_tables") >= 1
	})
	if harness.QueryOne[int64](t, p.b, "", "SELECT count(*) FROM steep_repl.snapshot_apply_tables WHERE table_name = $1", victim.Name) > 0 {
		t.Fatalf("%s was loaded before the swap", victim.Name)
	}
	// Mid-apply: the victim's file becomes a symlink, then the directory's path a symlink to
	// the attacker's copy.
	if err := os.Remove(filepath.Join(p.dir, victim.File)); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(secret, filepath.Join(p.dir, victim.File)); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(p.dir, p.dir+".moved"); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(evil, p.dir); err != nil {
		t.Fatal(err)
	}
	waitJobDone(t, p.b, job, "failed", 120*time.Second)
	msg := jobError(t, p.b, job)
	if !strings.Contains(msg, "1 table(s) refused") || !strings.Contains(msg, victim.QualifiedName()) ||
		!strings.Contains(msg, "symbolic link") || strings.Contains(msg, secret) {
		t.Fatalf("apply after the swap: %s", msg)
	}
	// Every other table came from the directory opened at the start, none from the swapped path.
	got := harness.QueryOne[string](t, p.b, "", "SELECT format('%s failed, %s verified', checksums_failed, checksums_verified) FROM steep_repl.snapshot_progress WHERE job_id = $1", job)
	if want := "0 failed, " + strconv.Itoa(len(m.Tables)-1) + " verified"; got != want {
		t.Fatalf("progress says %s, want %s", got, want)
	}
	if harness.QueryOne[bool](t, p.b, "", "SELECT EXISTS (SELECT 1 FROM "+victim.QualifiedName()+")") {
		t.Fatalf("%s holds rows on the target: data from the symlink's target was loaded", victim.QualifiedName())
	}
	var others []string
	for _, tb := range m.Tables {
		if tb.Name != victim.Name {
			others = append(others, tb.QualifiedName())
		}
	}
	// Their rows only: the failed apply restored the schema's pre-data, and post-data (the
	// primary keys among it) comes only once every table is in.
	assertRowsEqual(t, p.a, p.b, others...)
}

func TestSnapshotSecurityGenerateNeverOverwritesAnotherSnapshot(t *testing.T) {
	t.Parallel()
	p := setupSnapPair(t)
	first := generateSnapshot(t, p.a, p.dir, `{"subscribable": false}`)
	before := dirDigest(t, p.dir)
	second := harness.QueryOne[string](t, p.a, "", "SELECT steep_repl.generate_snapshot($1, '{\"subscribable\": false}')", p.dir)
	job := harness.QueryOne[int64](t, p.a, "", "SELECT job_id FROM steep_repl.snapshots WHERE id = $1", second)
	waitJobDone(t, p.a, job, "failed", 60*time.Second)
	if msg := jobError(t, p.a, job); !strings.Contains(msg, "holds another snapshot") {
		t.Fatalf("second generation into the first's directory: %s", msg)
	}
	if after := dirDigest(t, p.dir); after != before {
		t.Fatalf("the first snapshot's directory changed:\nbefore %s\nafter  %s", before, after)
	}
	if m := readManifest(t, p.dir); m.SnapshotID != first {
		t.Fatalf("the manifest is now %s's", m.SnapshotID)
	}
	if st := harness.QueryOne[string](t, p.a, "", "SELECT state FROM steep_repl.list_snapshots() WHERE id = $1", first); st != "complete" {
		t.Fatalf("the first snapshot is %s", st)
	}
	// An existing directory the sidecar did not make is refused too, and left as it was.
	existing := filepath.Join(filepath.Dir(p.dir), "existing")
	os.Mkdir(existing, 0o700)
	os.WriteFile(filepath.Join(existing, "notes.txt"), []byte("mine"), 0o600)
	third := harness.QueryOne[string](t, p.a, "", "SELECT steep_repl.generate_snapshot($1, '{\"subscribable\": false}')", existing)
	job = harness.QueryOne[int64](t, p.a, "", "SELECT job_id FROM steep_repl.snapshots WHERE id = $1", third)
	waitJobDone(t, p.a, job, "failed", 60*time.Second)
	if msg := jobError(t, p.a, job); !strings.Contains(msg, "not created by this snapshot's generation") {
		t.Fatalf("generation into an existing directory: %s", msg)
	}
	if entries, _ := os.ReadDir(existing); len(entries) != 1 {
		t.Fatalf("the existing directory now holds %v", entries)
	}
	applySnapshot(t, p.b, p.dir, `{}`, "succeeded")
	harness.AssertEqual(t, p.a, p.b, "")
}

func TestSnapshotSecurityChecksumMismatchDoesNotTellTheFilesHash(t *testing.T) {
	t.Parallel()
	p := setupSnapPair(t)
	generateSnapshot(t, p.a, p.dir, `{"subscribable": false}`)
	m := readManifest(t, p.dir)
	tb := m.Tables[0]
	path := filepath.Join(p.dir, tb.File)
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	b[len(b)/2] ^= 0x10
	os.WriteFile(path, b, 0o600)
	sum := sha256.Sum256(b)
	actual := hex.EncodeToString(sum[:])
	job := applySnapshot(t, p.b, p.dir, `{}`, "failed")
	msg := jobError(t, p.b, job)
	if !strings.Contains(msg, "checksum mismatch") || !strings.Contains(msg, tb.QualifiedName()) {
		t.Fatalf("the error does not name the table's failed verification: %s", msg)
	}
	everywhere := msg + p.carB.out.String() + harness.QueryOne[string](t, p.b, "", `SELECT
		(SELECT coalesce(string_agg(to_jsonb(j)::text, ' '), '') FROM steep_repl.jobs j) ||
		(SELECT coalesce(string_agg(to_jsonb(e)::text, ' '), '') FROM steep_repl.events e) ||
		(SELECT coalesce(string_agg(to_jsonb(s)::text, ' '), '') FROM steep_repl.snapshot_progress s) ||
		(SELECT coalesce(string_agg(to_jsonb(a)::text, ' '), '') FROM steep_repl.snapshot_applies a)`)
	if strings.Contains(everywhere, actual) {
		t.Fatalf("the refused file's actual sha256 %s was told", actual)
	}
}

// dirDigest lists a directory's entries with their modes and SHA-256.
func dirDigest(t *testing.T, dir string) string {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, e := range entries {
		b, _ := os.ReadFile(filepath.Join(dir, e.Name()))
		st, _ := os.Lstat(filepath.Join(dir, e.Name()))
		sum := sha256.Sum256(b)
		out = append(out, e.Name()+" "+st.Mode().String()+" "+hex.EncodeToString(sum[:8]))
	}
	return strings.Join(out, ", ")
}
