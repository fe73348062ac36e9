package tests

import (
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/steepdb/steep_repl/tests/harness"
)

// rootedSnapPair is a Chinook source and a target with the same tables, empty (so an apply
// loads data only), whose sidecars and servers share a snapshot root, so the operator (dba)
// names the directories; the source's sidecar is left to the test.
func rootedSnapPair(t *testing.T) (a, b *harness.Node, root string) {
	t.Helper()
	p := setupPair(t)
	p.car.kill()
	a, b = p.a, p.b
	a.Exec(t, "", "ANALYZE")
	root = filepath.Join(t.TempDir(), "root")
	if err := os.Mkdir(root, 0o755); err != nil {
		t.Fatal(err)
	}
	setSnapshotRoot(t, a, root)
	setSnapshotRoot(t, b, root)
	startSidecar(t, b, "sidecar_b", "--snapshot-root", root)
	return a, b, root
}

// startSidecarWithFileLimit is startSidecar under RLIMIT_FSIZE = bytes (prlimit execs the
// sidecar, so the process killed at cleanup is the sidecar itself): a write past the limit is
// what a full disk looks like to the sidecar, EFBIG (Go ignores SIGXFSZ).
func startSidecarWithFileLimit(t *testing.T, n *harness.Node, name string, bytes int, args ...string) *sidecar {
	t.Helper()
	prlimit, err := exec.LookPath("prlimit")
	if err != nil {
		t.Fatalf("prlimit (util-linux) is needed to limit the sidecar's file size: %v", err)
	}
	bindir, err := harness.BinDir()
	if err != nil {
		t.Fatal(err)
	}
	all := append([]string{"--fsize=" + strconv.Itoa(bytes), sidecarBin, "run", "--db", n.ConnString(""), "--worker", name,
		"--poll", "500ms", "--pg-bindir", bindir}, args...)
	s := &sidecar{name: name, cmd: exec.Command(prlimit, all...), out: &lockedBuffer{}, done: make(chan struct{})}
	s.cmd.Stdout, s.cmd.Stderr = s.out, s.out
	if err := s.cmd.Start(); err != nil {
		t.Fatalf("start sidecar %s: %v", name, err)
	}
	go func() { _ = s.cmd.Wait(); close(s.done) }()
	t.Cleanup(func() {
		s.signal(syscall.SIGKILL)
		<-s.done
		if t.Failed() {
			t.Logf("sidecar %s log:\n%s", name, s.out.String())
		}
	})
	return s
}

// A full disk while generating (RLIMIT_FSIZE on the sidecar): the generation fails at once with
// the reason, the sidecar lives on, the snapshot's slot and publication are dropped on the source
// and no partial file is left; delete_snapshot removes its directory, and a generation without
// the limit into the same path succeeds, applied equal.
func TestDiskFullWhileGeneratingFailsCleanlyAndARetryWithoutTheLimitSucceeds(t *testing.T) {
	scenario(t)
	t.Parallel()
	a, b, root := rootedSnapPair(t)
	full := startSidecarWithFileLimit(t, a, "sidecar_a_full", 40000, "--snapshot-root", root)
	dir := filepath.Join(root, "s1")
	id := dbaQuery[string](t, a, `SELECT steep_repl.generate_snapshot($1, '{"compression": "none", "parallel": 2}')`, dir)
	job := harness.QueryOne[int64](t, a, "", "SELECT job_id FROM steep_repl.snapshots WHERE id = $1", id)
	waitJobDone(t, a, job, "failed", 60*time.Second)
	msg := jobError(t, a, job)
	if !strings.Contains(msg, "file too large") {
		t.Fatalf("the generation's error does not say the file could not grow: %s", msg)
	}
	t.Logf("disk full: %s", msg)
	select {
	case <-full.done:
		t.Fatalf("the sidecar died of the file size limit instead of failing the job (exit %v)", full.cmd.ProcessState)
	default:
	}
	got := harness.QueryOne[string](t, a, "", `SELECT format('%s slots=%s publications=%s', s.state,
		(SELECT count(*) FROM pg_replication_slots), (SELECT count(*) FROM pg_publication)) FROM steep_repl.snapshots s WHERE id = $1`, id)
	if got != "failed slots=0 publications=0" {
		t.Fatalf("after the failed generation: %s, want failed with no slot and no publication", got)
	}
	entries, _ := os.ReadDir(dir)
	for _, e := range entries {
		if strings.HasSuffix(e.Name(), ".partial") {
			t.Fatalf("partial file left after the failure: %s", e.Name())
		}
	}
	t.Logf("%d complete file(s) of the failed generation kept for diagnosis", len(entries))

	full.kill()
	startSidecar(t, a, "sidecar_a", "--snapshot-root", root)
	del := dbaQuery[int64](t, a, "SELECT steep_repl.delete_snapshot($1)", id)
	waitJobDone(t, a, del, "succeeded", 60*time.Second)
	if _, err := os.Lstat(dir); !os.IsNotExist(err) {
		t.Fatalf("delete_snapshot left the failed generation's directory: %v", err)
	}
	id = dbaQuery[string](t, a, `SELECT steep_repl.generate_snapshot($1, '{"compression": "none", "parallel": 2, "subscribable": false}')`, dir)
	waitJobDone(t, a, harness.QueryOne[int64](t, a, "", "SELECT job_id FROM steep_repl.snapshots WHERE id = $1", id), "succeeded", 120*time.Second)
	waitJobDone(t, b, dbaQuery[int64](t, b, "SELECT steep_repl.apply_snapshot($1)", dir), "succeeded", 120*time.Second)
	harness.AssertEqual(t, a, b, "")
}

// A snapshot file cut short on a row boundary (a copy that stopped, a full disk on the way):
// COPY alone would take what is left as valid data, but the apply refuses it by the manifest's
// size and SHA-256, naming the table and its file, and loads nothing of that table (a compressed
// file cut short fails the same check: TestSnapshotApplyRefusesAFlippedByteAndNamesTheTable
// covers zstd). The whole file put back, a new apply ends equal.
func TestSnapshotApplyRefusesATruncatedFileAndNamesTheTableAndFile(t *testing.T) {
	t.Parallel()
	a, b, root := rootedSnapPair(t)
	startSidecar(t, a, "sidecar_a", "--snapshot-root", root)
	dir := filepath.Join(root, "snap")
	id := dbaQuery[string](t, a, `SELECT steep_repl.generate_snapshot($1, '{"compression": "none", "subscribable": false}')`, dir)
	waitJobDone(t, a, harness.QueryOne[int64](t, a, "", "SELECT job_id FROM steep_repl.snapshots WHERE id = $1", id), "succeeded", 120*time.Second)
	var file string
	for _, tb := range readManifest(t, dir).Tables {
		if tb.Name == "invoice_line" {
			file = filepath.Join(dir, tb.File)
		}
	}
	whole, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	cut := strings.LastIndexByte(string(whole[:len(whole)/2]), '\n') + 1 // whole rows: valid COPY text
	if err := os.WriteFile(file, whole[:cut], 0o600); err != nil {
		t.Fatal(err)
	}
	job := dbaQuery[int64](t, b, "SELECT steep_repl.apply_snapshot($1)", dir)
	waitJobDone(t, b, job, "failed", 120*time.Second)
	msg := jobError(t, b, job)
	if !strings.Contains(msg, "public.invoice_line") || !strings.Contains(msg, filepath.Base(file)) {
		t.Fatalf("the error does not name the table and its file: %s", msg)
	}
	t.Logf("refused: %s", msg)
	if harness.QueryOne[bool](t, b, "", "SELECT EXISTS (SELECT 1 FROM public.invoice_line)") {
		t.Fatalf("public.invoice_line holds rows after its file was refused")
	}
	if n := harness.QueryOne[int64](t, b, "", `SELECT count(*) FROM steep_repl.snapshot_apply_tables t
		JOIN steep_repl.snapshot_applies ap ON ap.id = t.apply_id WHERE ap.job_id = $1 AND t.table_name = 'invoice_line'`, job); n != 0 {
		t.Fatalf("invoice_line recorded as loaded")
	}

	if err := os.WriteFile(file, whole, 0o600); err != nil {
		t.Fatal(err)
	}
	// The apply's truncate option empties table by table, which Chinook's foreign keys refuse:
	// empty them all at once, as the DBA would.
	emptyChinook(t, b)
	waitJobDone(t, b, dbaQuery[int64](t, b, "SELECT steep_repl.apply_snapshot($1)", dir), "succeeded", 120*time.Second)
	harness.AssertEqual(t, a, b, "")
}

// emptyChinook empties every table of schema public on n in one TRUNCATE ... CASCADE per table.
func emptyChinook(t *testing.T, n *harness.Node) {
	t.Helper()
	n.Exec(t, "", `DO $$ DECLARE r record; BEGIN
		FOR r IN SELECT format('%I.%I', schemaname, tablename) t FROM pg_tables WHERE schemaname = 'public' LOOP
			EXECUTE 'TRUNCATE ' || r.t || ' CASCADE'; END LOOP; END $$`)
}
