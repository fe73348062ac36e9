package cli

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/steepdb/steep_repl/internal/api"
)

func sptr[T any](v T) *T { return &v }

func sampleSnapProgress() api.SnapshotProgress {
	return api.SnapshotProgress{
		JobID: 7, SnapshotID: sptr("snap_1"), Phase: "generation", Step: "writing", Percent: 42.3,
		BytesDone: 15_200_000_000, BytesTotal: 36_000_000_000, ThroughputBytesS: sptr(125e6), ETASeconds: sptr(168.0),
		TablesDone: 3, TablesTotal: 11, CurrentTable: sptr("public.track, public.invoice"), CompressionRatio: sptr(4.2),
	}
}

func TestSnapshotLineShowsBarBytesRateAndETA(t *testing.T) {
	got := snapshotLine(sampleSnapProgress(), false)
	want := "[██████░░░░░░░░░░] 42.3% | 15.2 GB / 36.0 GB | 125 MB/s | ETA 2m48s | GENERATION writing 3/11 tables"
	if got != want {
		t.Fatalf("line\n got %q\nwant %q", got, want)
	}
	p := sampleSnapProgress()
	p.ThroughputBytesS, p.ETASeconds = nil, nil
	if got := snapshotLine(p, false); !strings.Contains(got, "-- B/s | ETA --") {
		t.Fatalf("unknown rate and ETA: %q", got)
	}
	if got := snapshotLine(p, true); !strings.Contains(got, "\x1b[33mGENERATION\x1b[0m") {
		t.Fatalf("color: %q", got)
	}
}

func TestSnapshotDetailNamesTablesRatioChecksumsAndSkippedRows(t *testing.T) {
	if got := snapshotDetail(sampleSnapProgress()); got != "writing public.track, public.invoice | compression 4.2x" {
		t.Fatalf("generation detail %q", got)
	}
	p := sampleSnapProgress()
	p.Phase, p.CurrentTable, p.CompressionRatio = "application", nil, nil
	p.Message = sptr("snapshot   applied\n now")
	p.ChecksumsVerified, p.ChecksumsFailed, p.TuplesSkipped = 10, 1, 3
	if got := snapshotDetail(p); got != "snapshot applied now | checksums 10 ok, 1 failed | 3 malformed rows skipped" {
		t.Fatalf("application detail %q", got)
	}
}

func TestSnapshotJSONHasTheDocumentedKeys(t *testing.T) {
	b, err := snapshotJSON(sampleSnapProgress(), "running", time.Unix(0, 0))
	if err != nil {
		t.Fatal(err)
	}
	var rec map[string]any
	if err := json.Unmarshal(b, &rec); err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"phase", "percent", "bytes_done", "bytes_total", "rows_done", "throughput_bytes_s", "eta_s",
		"current_table", "tuples_skipped", "job_state", "snapshot_id", "compression_ratio"} {
		if _, ok := rec[k]; !ok {
			t.Errorf("no %s in %s", k, b)
		}
	}
	if rec["percent"] != 42.3 || rec["eta_s"] != 168.0 || rec["job_state"] != "running" {
		t.Fatalf("values: %s", b)
	}
	p := sampleSnapProgress()
	p.ETASeconds, p.CurrentTable = nil, nil
	b, _ = snapshotJSON(p, "running", time.Unix(0, 0))
	if !strings.Contains(string(b), `"eta_s":null`) || !strings.Contains(string(b), `"current_table":null`) {
		t.Fatalf("unknowns are not null: %s", b)
	}
}

func TestSnapshotSummaryOfGenerateAndApply(t *testing.T) {
	at := time.Unix(100, 0)
	end := at.Add(90 * time.Second)
	gen := api.Job{Kind: "snapshot.generate", AttemptedAt: &at, FinalizedAt: &end, Result: map[string]any{
		"snapshot_id": "snap_1", "lsn": "0/1A", "tables": 11.0, "rows": 15607.0, "bytes_raw": 400000.0,
		"bytes_compressed": 100000.0, "path": "/srv/snap"}}
	if got := snapshotSummary(gen, nil); got != "snapshot snap_1 complete at LSN 0/1A: 11 tables, 15.6k rows, 400 kB -> 100 kB (4.0x) in /srv/snap, 1m30s" {
		t.Fatalf("generate summary %q", got)
	}
	app := api.Job{Kind: "snapshot.apply", Result: map[string]any{"snapshot_id": "snap_1", "lsn": "0/1A", "tables": 11.0,
		"rows": 15607.0, "tuples_skipped": 3.0, "subscription": "sr_node_a_node_b"}}
	got := snapshotSummary(app, nil)
	if !strings.HasPrefix(got, "snapshot snap_1 applied (LSN 0/1A): 11 tables, 15.6k rows, 3 malformed rows skipped; subscription sr_node_a_node_b") {
		t.Fatalf("apply summary %q", got)
	}
}

func TestSnapshotCommandsParseTheirFlags(t *testing.T) {
	var out, errb strings.Builder
	if code := Main(t.Context(), []string{"snapshot", "generate", "--db", "postgres://x/y", "--parallel", "17", "--output", "/tmp/s"}, &out, &errb); code != 2 {
		t.Fatalf("--parallel 17: exit %d: %s", code, errb.String())
	}
	if code := Main(t.Context(), []string{"snapshot", "apply", "--db", "postgres://x/y"}, &out, &errb); code != 2 || !strings.Contains(errb.String(), "--input") {
		t.Fatalf("no --input: exit %d: %s", code, errb.String())
	}
	if got := interleave([]string{"--input", "/d", "--subscribe", "--error-tolerance", "3"}); strings.Join(got, " ") != "--input /d --subscribe --error-tolerance 3" {
		t.Fatalf("interleave %v", got)
	}
}
