package tests

import (
	"bufio"
	"context"
	"encoding/json"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/steepdb/steep_repl/tests/harness"
)

func TestSnapshotCLIJSONProgressQuietListAndDelete(t *testing.T) {
	t.Parallel()
	p := setupSnapPair(t)
	p.a.Exec(t, "", "CREATE TABLE filler (id bigint PRIMARY KEY, v text NOT NULL)")
	p.a.Exec(t, "", "INSERT INTO filler SELECT g, md5(g::text) FROM generate_series(1, 100000) g")
	p.a.Exec(t, "", "ANALYZE filler")

	// The progress row is announced on steep_repl_progress.
	listener, err := pgx.Connect(context.Background(), p.a.ConnString(""))
	if err != nil {
		t.Fatal(err)
	}
	defer listener.Close(context.Background())
	if _, err := listener.Exec(context.Background(), "LISTEN steep_repl_progress"); err != nil {
		t.Fatal(err)
	}

	// About 4 MB at 1 MB/s per worker: several progress samples.
	out, errOut, code := runCLI(t, "snapshot", "generate", "--db", p.a.ConnString(""), "--output", p.dir,
		"--compression", "gzip", "--parallel", "2", "--max-rate", "1000000", "--json-progress")
	if code != 0 {
		t.Fatalf("generate exited %d\nstdout:\n%s\nstderr:\n%s", code, out, errOut)
	}
	notified := 0
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
		n, err := listener.WaitForNotification(ctx)
		cancel()
		if err != nil {
			break
		}
		var payload map[string]any
		if json.Unmarshal([]byte(n.Payload), &payload) != nil || payload["phase"] != "generation" {
			t.Fatalf("notification payload %q", n.Payload)
		}
		notified++
	}
	if notified < 3 {
		t.Fatalf("%d NOTIFY steep_repl_progress during the generation", notified)
	}
	var last map[string]any
	prev, lines := -1.0, 0
	sc := bufio.NewScanner(strings.NewReader(out))
	for sc.Scan() {
		var rec map[string]any
		if err := json.Unmarshal(sc.Bytes(), &rec); err != nil {
			t.Fatalf("not NDJSON: %q: %v", sc.Text(), err)
		}
		for _, k := range []string{"phase", "percent", "bytes_done", "bytes_total", "rows_done", "throughput_bytes_s", "eta_s", "current_table", "tuples_skipped"} {
			if _, ok := rec[k]; !ok {
				t.Fatalf("progress line without %s: %s", k, sc.Text())
			}
		}
		pct := rec["percent"].(float64)
		if pct < prev {
			t.Fatalf("percent went down: %v after %v", pct, prev)
		}
		prev, last = pct, rec
		lines++
	}
	if lines < 3 || last["job_state"] != "succeeded" || last["percent"] != 100.0 || last["phase"] != "generation" {
		t.Fatalf("last progress record %v after %d lines", last, lines)
	}
	if !strings.Contains(errOut, "complete at LSN") {
		t.Fatalf("no summary on stderr:\n%s", errOut)
	}
	m := readManifest(t, p.dir)

	out, errOut, code = runCLI(t, "snapshot", "apply", "--db", p.b.ConnString(""), "--input", p.dir, "--quiet")
	if code != 0 {
		t.Fatalf("apply exited %d\nstdout:\n%s\nstderr:\n%s", code, out, errOut)
	}
	if lines := strings.Split(strings.TrimSpace(out), "\n"); len(lines) != 1 || !strings.Contains(out, "applied") || strings.Contains(out, "█") || errOut != "" {
		t.Fatalf("--quiet printed more than the summary:\nstdout:\n%s\nstderr:\n%s", out, errOut)
	}
	harness.AssertEqual(t, p.a, p.b, "")

	// The tables hold rows now: a second apply fails (exit 1) and says why.
	_, errOut, code = runCLI(t, "snapshot", "apply", "--db", p.b.ConnString(""), "--input", p.dir, "--quiet")
	if code != 1 || !strings.Contains(errOut, "already holds rows") {
		t.Fatalf("second apply: exit %d, stderr:\n%s", code, errOut)
	}

	out, _, code = runCLI(t, "snapshot", "list", "--db", p.a.ConnString(""))
	if code != 0 || !strings.Contains(out, m.SnapshotID) || !strings.Contains(out, "complete") {
		t.Fatalf("snapshot list (exit %d):\n%s", code, out)
	}
	out, errOut, code = runCLI(t, "snapshot", "delete", m.SnapshotID, "--db", p.a.ConnString(""), "--wait")
	if code != 0 {
		t.Fatalf("delete exited %d:\n%s%s", code, out, errOut)
	}
	if _, err := os.Stat(p.dir); !os.IsNotExist(err) {
		t.Fatalf("the snapshot directory is still there: %v", err)
	}
	left := harness.QueryOne[string](t, p.a, "", `SELECT format('%s slots, %s publications, %s',
		(SELECT count(*) FROM pg_replication_slots), (SELECT count(*) FROM pg_publication),
		(SELECT state FROM steep_repl.snapshots WHERE id = $1))`, m.SnapshotID)
	if left != "0 slots, 0 publications, deleted" {
		t.Fatalf("after delete: %s", left)
	}
}
