package model

import (
	"strings"
	"testing"
	"time"

	"github.com/steepdb/steep_repl/internal/api"
)

// snapReadings: node_a generates snap_new (42.3%) and generated snap_old (complete);
// node_b applies snap_new (12.5%) and has an apply queued whose manifest is not read yet.
func snapReadings() []Reading {
	rs := pairReadings()
	for i := range rs {
		rs[i].Server.HasSnapshots = true
	}
	b, a := &rs[0], &rs[1]
	a.SnapshotList = []api.SnapshotInfo{
		{ID: ptr("snap_new"), Role: RoleGenerated, State: "generating", SourceNode: ptr("node_a"), JobID: ptr(int64(5)),
			CreatedAt: t0.Add(time.Minute)},
		{ID: ptr("snap_old"), Role: RoleGenerated, State: "complete", SourceNode: ptr("node_a"), JobID: ptr(int64(2)),
			CreatedAt: t0},
	}
	a.SnapshotProgress = map[int64]api.SnapshotProgress{
		5: {JobID: 5, Phase: "generation", Step: "writing", Percent: 42.3},
		2: {JobID: 2, Phase: "generation", Step: "done", Percent: 100},
	}
	b.SnapshotList = []api.SnapshotInfo{
		{Role: RoleApplied, State: "queued", JobID: ptr(int64(11)), CreatedAt: t0.Add(3 * time.Minute)},
		{ID: ptr("snap_new"), Role: RoleApplied, State: "applying", SourceNode: ptr("node_a"), JobID: ptr(int64(9)),
			CreatedAt: t0.Add(2 * time.Minute)},
	}
	b.SnapshotProgress = map[int64]api.SnapshotProgress{9: {JobID: 9, Phase: "application", Step: "loading", Percent: 12.5}}
	return rs
}

func TestMergeSnapshotsPairsEachGenerationWithItsApplications(t *testing.T) {
	s := Merge(snapReadings(), "", true, t0)
	snaps := s.Snapshots
	if !snaps.Available || snaps.Unsupported != nil || snaps.Problems != nil {
		t.Fatalf("snapshots %+v", snaps)
	}
	var keys []string
	for _, it := range snaps.Items {
		keys = append(keys, it.Key)
	}
	if strings.Join(keys, ",") != "node_b/job 11,snap_new,snap_old" {
		t.Fatalf("items %v, want newest first", keys)
	}
	n := snaps.Find("snap_new")
	if n == nil || n.ID != "snap_new" || n.Source != "node_a" || !n.CreatedAt.Equal(t0.Add(2*time.Minute)) || !n.Active() {
		t.Fatalf("snap_new %+v", n)
	}
	if g := n.Generation; g == nil || g.Node != "node_a" || g.Progress == nil || g.Progress.Percent != 42.3 || g.Stale || !g.Generated() {
		t.Errorf("generation %+v", n.Generation)
	}
	if len(n.Applications) != 1 || n.Applications[0].Node != "node_b" || n.Applications[0].Progress.Percent != 12.5 {
		t.Errorf("applications %+v", n.Applications)
	}
	if q := snaps.Find("node_b/job 11"); q == nil || q.ID != "" || q.Generation != nil || q.Applications[0].Progress != nil {
		t.Errorf("apply without manifest %+v", q)
	}
	if old := snaps.Find("snap_old"); old == nil || old.Active() || len(old.Applications) != 0 {
		t.Errorf("snap_old %+v", old)
	}
	if snaps.Find("snap_nope") != nil {
		t.Error("found a snapshot that is not listed")
	}

	a, b := rowNamed(t, s, "node_a"), rowNamed(t, s, "node_b")
	if len(a.Snapshots) != 1 || *a.Snapshots[0].Info.ID != "snap_new" || a.SnapshotsUnsupported {
		t.Errorf("node_a marks %+v", a.Snapshots)
	}
	if len(b.Snapshots) != 2 {
		t.Errorf("node_b marks %+v, want the queued apply and snap_new's", b.Snapshots)
	}
	rs := snapReadings()
	if !snapshotsActive(rs[1]) {
		t.Error("a generating snapshot does not make node_a's poll active")
	}
	rs[1].SnapshotList = rs[1].SnapshotList[1:]
	if snapshotsActive(rs[1]) {
		t.Error("a complete snapshot keeps node_a's poll active")
	}
}

func TestMergeSnapshotsOfAnUnreachableNodeAreKeptStale(t *testing.T) {
	rs := snapReadings()
	rs[1].Link, rs[1].Stale, rs[1].Reason = LinkUnreachable, true, "connection refused"
	s := Merge(rs, "", true, t0)
	if g := s.Snapshots.Find("snap_new").Generation; g == nil || !g.Stale {
		t.Errorf("generation of an unreachable source %+v", g)
	}
	if a := rowNamed(t, s, "node_a"); a.Snapshots != nil || a.SnapshotsUnsupported {
		t.Errorf("an unreachable node is marked: %+v", a)
	}
}

func TestMergeSnapshotsWithoutSupportOrPermission(t *testing.T) {
	rs := snapReadings()
	rs[0].Server.HasSnapshots, rs[0].SnapshotList, rs[0].SnapshotProgress = false, nil, nil // node_b: an older extension
	rs[1].SnapshotProblem = "no permission to read its snapshots (grant steep_repl_admin)"
	rs[1].SnapshotList, rs[1].SnapshotProgress = nil, nil
	s := Merge(rs, "", true, t0)
	if !s.Snapshots.Available || strings.Join(s.Snapshots.Unsupported, ",") != "node_b" ||
		len(s.Snapshots.Problems) != 1 || !strings.HasPrefix(s.Snapshots.Problems[0], "node_a: no permission") ||
		len(s.Snapshots.Items) != 0 {
		t.Errorf("snapshots %+v", s.Snapshots)
	}
	if b := rowNamed(t, s, "node_b"); !b.SnapshotsUnsupported {
		t.Error("node_b's row does not say it has no snapshot support")
	}
}
