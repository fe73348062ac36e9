package progress

import (
	"encoding/json"
	"math"
	"reflect"
	"strings"
	"testing"
	"time"
)

func ptr[T any](v T) *T { return &v }

var t0 = time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)

func copying() Snapshot {
	return Snapshot{
		Time: t0, Node: "node_b", Source: "node_a", State: "copying", Phase: "copying",
		Percent: 42.3, TablesTotal: 11, TablesDone: 3,
		CurrentTables: []string{"public.orders", "public.items"}, LargeTables: []string{"public.orders"},
		BytesTotal: 36_000_000_000, BytesDone: 15_200_000_000, RowsTotal: 9_000_000, RowsDone: 4_000_000,
		RowsPerSec: ptr(52_100.0), BytesPerSec: ptr(125e6), ETASeconds: ptr(168.0),
		StartedAt: t0.Add(-2 * time.Minute), UpdatedAt: t0.Add(-time.Second),
	}
}

func TestLine(t *testing.T) {
	stalled := copying()
	stalled.StalledSince = ptr(t0.Add(-80 * time.Second))
	catching := copying()
	catching.State, catching.Phase, catching.Percent, catching.TablesDone = "catching_up", "catching_up", 100, 11
	catching.LagBytes = ptr(int64(12_000_000))
	catching.CurrentTables = nil
	unknown := Snapshot{Node: "node_b", Source: "node_a", State: "preparing"}
	phaseOnly := Snapshot{Phase: "copying", Percent: 7}
	snapshotJob := Snapshot{Phase: "generation", Step: "writing", NoRowsRate: true, Percent: 42.3,
		BytesDone: 15_200_000_000, BytesTotal: 36_000_000_000, BytesPerSec: ptr(125e6), ETASeconds: ptr(168.0),
		TablesDone: 3, TablesTotal: 11}

	tests := []struct {
		name  string
		p     Snapshot
		color bool
		want  string
	}{
		{"copying", copying(), false,
			"[██████░░░░░░░░░░] 42.3% | 15.2 GB / 36.0 GB | 125 MB/s | 52.1k rows/s | ETA 2m48s | COPYING 3/11 tables"},
		{"copying in color", copying(), true,
			"[██████░░░░░░░░░░] 42.3% | 15.2 GB / 36.0 GB | 125 MB/s | 52.1k rows/s | ETA 2m48s | \x1b[33mCOPYING\x1b[0m 3/11 tables"},
		{"stalled", stalled, false,
			"[██████░░░░░░░░░░] 42.3% | 15.2 GB / 36.0 GB | 125 MB/s | 52.1k rows/s | ETA 2m48s | COPYING 3/11 tables | stalled 1m20s"},
		{"catching up with lag", catching, false,
			"[████████████████] 100.0% | 15.2 GB / 36.0 GB | 125 MB/s | 52.1k rows/s | ETA 2m48s | CATCHING_UP 11/11 tables | lag 12.0 MB"},
		{"nothing known yet", unknown, false,
			"[░░░░░░░░░░░░░░░░] 0.0% | 0 B / 0 B | -- B/s | -- rows/s | ETA -- | PREPARING 0/0 tables"},
		{"phase when no state", phaseOnly, false,
			"[█░░░░░░░░░░░░░░░] 7.0% | 0 B / 0 B | -- B/s | -- rows/s | ETA -- | COPYING 0/0 tables"},
		{"snapshot job: step after the phase, no rows/s", snapshotJob, false,
			"[██████░░░░░░░░░░] 42.3% | 15.2 GB / 36.0 GB | 125 MB/s | ETA 2m48s | GENERATION writing 3/11 tables"},
		{"snapshot job in color", snapshotJob, true,
			"[██████░░░░░░░░░░] 42.3% | 15.2 GB / 36.0 GB | 125 MB/s | ETA 2m48s | \x1b[33mGENERATION\x1b[0m writing 3/11 tables"},
	}
	for _, tt := range tests {
		if got := Line(tt.p, tt.color); got != tt.want {
			t.Errorf("%s:\n got %q\nwant %q", tt.name, got, tt.want)
		}
	}
}

func TestLineColors(t *testing.T) {
	tests := []struct{ state, color string }{
		{"synchronized", ansiGreen},
		{"copying", ansiYellow},
		{"catching_up", ansiYellow},
		{"preparing", ansiYellow},
		{"generation", ansiYellow},
		{"application", ansiYellow},
		{"failed", ansiRed},
		{"uninitialized", ""},
	}
	for _, tt := range tests {
		p := Snapshot{State: tt.state}
		got := Line(p, true)
		plain := Line(p, false)
		if tt.color == "" {
			if got != plain {
				t.Errorf("%s: colored line %q differs from plain %q", tt.state, got, plain)
			}
			continue
		}
		if want := tt.color + strings.ToUpper(tt.state) + ansiReset; !strings.Contains(got, want) {
			t.Errorf("%s: line %q lacks %q", tt.state, got, want)
		}
		if strings.Contains(plain, "\x1b") {
			t.Errorf("%s: plain line %q has escape codes", tt.state, plain)
		}
	}
}

func TestDetail(t *testing.T) {
	many := copying()
	many.CurrentTables = []string{"s.a", "s.b", "s.c", "s.d", "s.e"}
	failed := copying()
	failed.State, failed.Message = "failed", "source node_a unreachable\nfor 5 minutes"
	failedBare := copying()
	failedBare.State = "failed"
	note := copying()
	note.CurrentTables, note.Message = nil, "waiting for a sync worker"
	tests := []struct {
		name string
		p    Snapshot
		want string
	}{
		{"current tables", copying(), "copying public.orders (large), public.items"},
		{"more than the max", many, "copying s.a, s.b, s.c +2 more"},
		{"failed with reason", failed, "failed: source node_a unreachable for 5 minutes"},
		{"failed without reason", failedBare, "failed"},
		{"note", note, "waiting for a sync worker"},
		{"preparing", Snapshot{Node: "b", Source: "a", State: "preparing"}, "preparing: setting up the publication on a and the subscription on b"},
		{"catching up", Snapshot{Source: "a", State: "catching_up"}, "catching up: applying the changes made on a since the copy began"},
		{"synchronized", Snapshot{Source: "a", State: "synchronized"}, "synchronized: replicating from a"},
		{"nothing", Snapshot{State: "uninitialized"}, ""},
	}
	for _, tt := range tests {
		if got := Detail(tt.p); got != tt.want {
			t.Errorf("%s: Detail = %q, want %q", tt.name, got, tt.want)
		}
	}
}

func TestSummary(t *testing.T) {
	done := copying()
	done.State, done.TablesDone, done.BytesDone = "synchronized", 11, 1_234_567
	done.StartedAt, done.UpdatedAt = t0.Add(-15*time.Second), t0
	failed := copying()
	failed.State, failed.Message = "failed", "source unreachable"
	failed.StartedAt, failed.UpdatedAt = t0.Add(-62*time.Second), t0
	noUpdate := done
	noUpdate.UpdatedAt = time.Time{}
	noStart := done
	noStart.StartedAt = time.Time{}
	tests := []struct {
		name string
		p    Snapshot
		want string
	}{
		{"synchronized", done, "node_b SYNCHRONIZED from node_a: 11 tables, 1.2 MB, 15s"},
		{"failed", failed, "node_b FAILED from node_a after 3/11 tables, 15.2 GB, 1m02s: source unreachable"},
		{"no updated_at: up to Time", noUpdate, "node_b SYNCHRONIZED from node_a: 11 tables, 1.2 MB, 15s"},
		{"no start: no duration", noStart, "node_b SYNCHRONIZED from node_a: 11 tables, 1.2 MB"},
	}
	for _, tt := range tests {
		if got := Summary(tt.p); got != tt.want {
			t.Errorf("%s: Summary = %q, want %q", tt.name, got, tt.want)
		}
	}
}

func TestJSON(t *testing.T) {
	keys := []string{"time", "node", "state", "phase", "percent", "tables_total", "tables_done", "current_tables",
		"bytes_done", "bytes_total", "rows_done", "rows_per_sec", "throughput_bytes_s", "eta_s", "lag_bytes", "message"}

	b, err := JSON(copying())
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(b), "\n") {
		t.Errorf("JSON is not one line: %s", b)
	}
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatal(err)
	}
	var got []string
	for k := range m {
		got = append(got, k)
	}
	if len(got) != len(keys) {
		t.Errorf("keys = %v, want %v", got, keys)
	}
	for _, k := range keys {
		if _, ok := m[k]; !ok {
			t.Errorf("key %q missing in %s", k, b)
		}
	}
	// Keys come in the documented order.
	last := -1
	for _, k := range keys {
		i := strings.Index(string(b), `"`+k+`":`)
		if i < last {
			t.Errorf("key %q out of order in %s", k, b)
		}
		last = i
	}
	want := map[string]any{
		"time": "2025-03-01T12:00:00Z", "node": "node_b", "state": "copying", "phase": "copying", "percent": 42.3,
		"tables_total": 11.0, "tables_done": 3.0, "current_tables": []any{"public.orders", "public.items"},
		"bytes_done": 15.2e9, "bytes_total": 36e9, "rows_done": 4e6, "rows_per_sec": 52100.0,
		"throughput_bytes_s": 125e6, "eta_s": 168.0, "lag_bytes": nil, "message": nil,
	}
	if !reflect.DeepEqual(m, want) {
		t.Errorf("JSON = %v\nwant   %v", m, want)
	}
}

func TestJSONUnknowns(t *testing.T) {
	local := time.FixedZone("X", 3600)
	p := Snapshot{Time: time.Date(2025, 3, 1, 13, 0, 0, 0, local), Node: "n", State: "FAILED", Percent: math.NaN(),
		RowsPerSec: ptr(math.NaN()), BytesPerSec: ptr(math.Inf(1)), ETASeconds: ptr(-1.0),
		LagBytes: ptr(int64(7)), Message: "boom"}
	b, err := JSON(p)
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatal(err)
	}
	for k, want := range map[string]any{"time": "2025-03-01T12:00:00Z", "state": "failed", "percent": 0.0,
		"current_tables": []any{}, "rows_per_sec": nil, "throughput_bytes_s": nil, "eta_s": nil,
		"lag_bytes": 7.0, "message": "boom"} {
		if !reflect.DeepEqual(m[k], want) {
			t.Errorf("%s = %#v, want %#v", k, m[k], want)
		}
	}
}
