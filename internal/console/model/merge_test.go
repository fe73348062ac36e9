package model

import (
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/steepdb/steep_repl/internal/api"
)

func ptr[T any](v T) *T { return &v }

var t0 = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

// pairReadings: node_b (the --db node) is copying from node_a; each registry only knows its
// own node's init, as in a real cluster.
func pairReadings() []Reading {
	pg18 := api.ServerInfo{VersionNum: 180004, HasExtension: true, CanReadConninfo: true}
	slot := "sr_node_a_node_b"
	return []Reading{
		{Key: "b:5432/postgres", Addr: "b:5432", Seed: true, Link: LinkOK, LocalNode: "node_b", Server: pg18,
			Registry: []api.Node{
				{Name: "node_a", InitState: "uninitialized"},
				{Name: "node_b", IsLocal: true, InitState: "copying", InitSource: ptr("node_a"), StateChangedAt: t0},
			},
			Peers:    map[string]Peer{"node_a": {Key: "a:5432/postgres", Addr: "a:5432"}},
			Progress: &api.InitProgress{Node: "node_b", State: "copying", Percent: 42.3, RowsPerSec: ptr(1000.0)},
			Subs:     []api.SubscriptionStats{{Name: "sr_node_a_node_b", SlotName: &slot, Conflicts: []int64{0, 4, 0, 1, 0, 0, 0}}},
			Events: []api.Event{{ID: 7, At: t0.Add(2 * time.Second), Event: "init.state_change"},
				{ID: 6, At: t0, Event: "init.state_change"}}},
		{Key: "a:5432/postgres", Addr: "a:5432", Link: LinkOK, LocalNode: "node_a", Server: pg18,
			Registry: []api.Node{
				{Name: "node_a", IsLocal: true, InitState: "uninitialized"},
				{Name: "node_b", InitState: "uninitialized"},
			},
			Slots:  map[string]int64{slot: 4096},
			Events: []api.Event{{ID: 3, At: t0.Add(time.Second), Event: "node.registered"}}},
	}
}

func rowNamed(t *testing.T, s State, name string) NodeRow {
	t.Helper()
	for _, r := range s.Nodes {
		if r.Name == name {
			return r
		}
	}
	t.Fatalf("no row %s in %+v", name, s.Nodes)
	return NodeRow{}
}

func TestMergeTakesEachNodesStateFromItself(t *testing.T) {
	s := Merge(pairReadings(), "", true, t0)
	if len(s.Nodes) != 2 || s.Nodes[0].Name != "node_a" {
		t.Fatalf("rows %+v", s.Nodes)
	}
	b := rowNamed(t, s, "node_b")
	if b.State != "copying" || b.StateStale || b.Progress == nil || b.Progress.Percent != 42.3 || b.Role != "local" {
		t.Errorf("node_b %+v", b)
	}
	if b.Conflicts == nil || *b.Conflicts != 1 {
		t.Errorf("node_b conflicts %v, want 1: update_missing counts, update_origin_differs is no data conflict", b.Conflicts)
	}
	if b.LagBytes == nil || *b.LagBytes != 4096 {
		t.Errorf("node_b lag %v, want its slot's lag on node_a", b.LagBytes)
	}
	a := rowNamed(t, s, "node_a")
	if a.Role != "remote, source of node_b" || a.State != "uninitialized" || a.Progress != nil || a.Addr != "a:5432" {
		t.Errorf("node_a %+v", a)
	}
	if len(s.Events) != 3 || s.Events[0].ID != 7 || s.Events[1].Log != "node_a" || s.Events[2].ID != 6 {
		t.Errorf("events not merged newest first: %+v", s.Events)
	}
	if len(s.Conflicts) != 1 || s.Conflicts[0].Node != "node_b" {
		t.Errorf("conflict rows %+v", s.Conflicts)
	}
	// Neither extension has snapshot support (HasSnapshots false): both are listed as such.
	if s.Snapshots.Available || strings.Join(s.Snapshots.Unsupported, ",") != "node_a,node_b" || len(s.Snapshots.Items) != 0 ||
		!b.SnapshotsUnsupported || b.Snapshots != nil {
		t.Errorf("snapshots %+v, node_b unsupported %v", s.Snapshots, b.SnapshotsUnsupported)
	}
}

func TestMergeKeepsAnUnreachableNodesLastStateStale(t *testing.T) {
	rs := pairReadings()
	rs[1].Link, rs[1].Stale, rs[1].Reason = LinkUnreachable, true, "connection refused"
	s := Merge(rs, "", true, t0)
	a := rowNamed(t, s, "node_a")
	if a.Link != LinkUnreachable || a.LinkReason != "connection refused" || !a.StateStale || a.State != "uninitialized" ||
		a.Conflicts != nil {
		t.Errorf("node_a %+v", a)
	}
	if b := rowNamed(t, s, "node_b"); b.LagBytes != nil {
		t.Errorf("lag read from an unreachable node: %v", *b.LagBytes)
	}
	if len(s.Conflicts) != 1 {
		t.Errorf("conflicts %+v", s.Conflicts)
	}
}

func TestMergeShowsNodesItCannotConnectToFromTheRegistry(t *testing.T) {
	rs := pairReadings()[:1]
	rs[0].Server.CanReadConninfo, rs[0].Peers = false, nil
	a := rowNamed(t, Merge(rs, "", true, t0), "node_a")
	if a.Link != LinkNotConnected || a.LinkReason != notConnectedReason || !a.StateStale || a.State != "uninitialized" {
		t.Errorf("node_a %+v", a)
	}

	rs[0].Peers = map[string]Peer{"node_a": {Key: "a:5432/postgres", Addr: "a:5432"}}
	if a := rowNamed(t, Merge(rs, "", true, t0), "node_a"); a.Link != LinkConnecting || a.Addr != "a:5432" {
		t.Errorf("found but not yet polled: %+v", a)
	}
	rs[0].Peers = map[string]Peer{"node_a": {Reason: "its registered conninfo does not parse"}}
	if a := rowNamed(t, Merge(rs, "", true, t0), "node_a"); a.Link != LinkNotConnected || !strings.Contains(a.LinkReason, "parse") {
		t.Errorf("bad conninfo: %+v", a)
	}
}

func TestMergeNamesANeverReachedSeedByAddress(t *testing.T) {
	rs := []Reading{{Key: "h:1/db", Addr: "h:1", Seed: true, Link: LinkUnreachable, Reason: "refused"}}
	s := Merge(rs, "", true, t0)
	if len(s.Nodes) != 1 || s.Nodes[0].Name != "(h:1)" || s.Nodes[0].Link != LinkUnreachable || s.Nodes[0].Role != "local" {
		t.Errorf("rows %+v", s.Nodes)
	}
}

func TestMergeConflictCountersNeedPostgres18(t *testing.T) {
	rs := pairReadings()
	rs[0].Server.VersionNum = 170006
	rs[0].Subs[0].Conflicts = nil
	s := Merge(rs, "", true, t0)
	if b := rowNamed(t, s, "node_b"); b.Conflicts != nil {
		t.Errorf("PostgreSQL 17 has no conflict counters, got %d", *b.Conflicts)
	}
	if a := rowNamed(t, s, "node_a"); a.Conflicts == nil || *a.Conflicts != 0 {
		t.Errorf("a PostgreSQL 18 node without subscriptions has 0 conflicts: %v", a.Conflicts)
	}
}

func TestMergeDetailOfTheFocusedNode(t *testing.T) {
	rs := pairReadings()
	rs[0].Focus = "node_b"
	rs[0].Tables = []api.InitTable{{Schema: "public", Table: "slow", SyncState: "copying"}}
	s := Merge(rs, "node_b", true, t0)
	if s.Detail == nil || s.Detail.Node != "node_b" || len(s.Detail.Tables) != 1 || s.Detail.Progress == nil {
		t.Fatalf("detail %+v", s.Detail)
	}
	if d := Merge(rs, "node_a", true, t0).Detail; d == nil || d.Node != "node_a" || d.Tables != nil {
		t.Errorf("node_a's tables were not read: %+v", d)
	}
	if Merge(rs, "", true, t0).Detail != nil {
		t.Error("no focus, no detail")
	}
}

func TestNoPasswordReachesWhatIsDrawn(t *testing.T) {
	cfg, err := Config{}.withDefaults()
	if err != nil {
		t.Fatal(err)
	}
	tg, err := parseSeed("postgres://watcher:s3cr3t-pw@db1.example:6432/app", cfg)
	if err != nil {
		t.Fatal(err)
	}
	if tg.addr != "db1.example:6432" || tg.key != "db1.example:6432/app" {
		t.Errorf("addr %q key %q", tg.addr, tg.key)
	}
	e := &endpoint{target: tg}
	reason := e.reason(fmt.Errorf("connect: %w", errors.New("password authentication failed for s3cr3t-pw")))
	if strings.Contains(reason, "s3cr3t-pw") {
		t.Errorf("reason shows the password: %q", reason)
	}
	if _, err := parseSeed("postgres://u:s3cr3t-pw@h:notaport/db", cfg); err == nil || strings.Contains(err.Error(), "s3cr3t-pw") {
		t.Errorf("parse error %v", err)
	}
	m := &Model{cfg: cfg}
	peers, cfgs := m.peers(map[string]string{"node_a": "host=h port=5 password=s3cr3t-pw", "node_b": "port=bad password=s3cr3t-pw",
		"me": "host=x"}, "me")
	if peers["node_a"].Addr != "h:5" || peers["node_b"].Key != "" || !strings.Contains(peers["node_b"].Reason, "parse") {
		t.Errorf("peers %v", peers)
	}
	if strings.Contains(fmt.Sprintf("%+v", peers), "s3cr3t") || cfgs["node_a"] == nil || cfgs["me"] != nil {
		t.Errorf("peers %+v", peers)
	}
}

func TestConfigDefaultsAndValidation(t *testing.T) {
	c, err := Config{}.withDefaults()
	if err != nil || c.ActiveInterval != time.Second || c.IdleInterval != 2*time.Second || len(c.URLs) != 1 ||
		c.AppName != "steep-console" {
		t.Errorf("defaults %+v %v", c, err)
	}
	if _, err := (Config{MinBackoff: time.Second, MaxBackoff: time.Millisecond}).withDefaults(); err == nil {
		t.Error("max backoff below min accepted")
	}
	if _, err := New(Config{}, nil); err == nil {
		t.Error("nil publish accepted")
	}
	if _, err := New(Config{URLs: []string{"postgres://h:bad/x"}}, func(State) {}); err == nil {
		t.Error("bad --db accepted")
	}
}
