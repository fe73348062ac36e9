package nodeinit

import (
	"encoding/json"
	"testing"

	"github.com/steepdb/steep_repl/internal/api"
)

func TestCountPlanCountsPerTableAndDirectionInApplyOrder(t *testing.T) {
	rows := []api.MergeRow{
		{Schema: "public", Table: "parent", Category: "conflicting", Resolution: "to_local", Tie: true},
		{Schema: "public", Table: "parent", Category: "local_only", Resolution: "to_peer"},
		{Schema: "public", Table: "child", Category: "peer_only", Resolution: "to_local"},
		{Schema: "public", Table: "child", Category: "conflicting", Resolution: "manual"},
	}
	got := countPlan(rows)
	want := []tableCount{
		{Schema: "public", Table: "parent", ToLocal: 1, ToPeer: 1, Conflicting: 1, LocalOnly: 1, Ties: 1},
		{Schema: "public", Table: "child", ToLocal: 1, Manual: 1, Conflicting: 1, PeerOnly: 1},
	}
	if len(got) != len(want) || got[0] != want[0] || got[1] != want[1] {
		t.Fatalf("countPlan = %+v, want %+v", got, want)
	}
	if tt := totals(got); tt[0].Rows != 2 || tt[1].Rows != 1 { // manual rows do not move
		t.Fatalf("totals = %+v", tt)
	}
}

// A plan's key holds JSON numbers, _merge_rows' rows the columns' text forms: the row images
// must still be found by key, for composite keys too.
func TestRowImagesAreMatchedToPlanKeysAcrossJSONTypes(t *testing.T) {
	batch := []api.MergeRow{
		{Schema: "s", Table: "t", Key: json.RawMessage(`{"a": 1, "b": "x"}`), Category: "conflicting", Resolution: "to_local"},
		{Schema: "s", Table: "t", Key: json.RawMessage(`{"a": 2, "b": "y"}`), Category: "peer_only", Resolution: "to_local"},
	}
	peer := imagesByKey(batch, json.RawMessage(`[{"b": "x", "a": "1", "v": "p1"}, {"a": "2", "b": "y", "v": "p2"}]`))
	local := imagesByKey(batch, json.RawMessage(`[{"a": "1", "b": "x", "v": "l1"}]`))
	audit := auditRows(batch, local, peer, true)
	if string(audit[0]["peer_row"].(json.RawMessage)) != `{"b": "x", "a": "1", "v": "p1"}` ||
		string(audit[0]["local_row"].(json.RawMessage)) != `{"a": "1", "b": "x", "v": "l1"}` {
		t.Fatalf("conflicting row images: %+v", audit[0])
	}
	if _, ok := audit[1]["local_row"]; ok || audit[1]["peer_row"] == nil {
		t.Fatalf("peer_only row images: %+v", audit[1])
	}
	if a := auditRows(batch, local, peer, false); a[0]["peer_row"] != nil {
		t.Fatalf("a dry run records no images: %+v", a[0])
	}
}

func TestByTableSplitsRowsPerTable(t *testing.T) {
	rows := []api.MergeRow{{Schema: "a", Table: "x"}, {Schema: "a", Table: "x"}, {Schema: "a", Table: "y"}, {Schema: "b", Table: "x"}}
	g := byTable(rows)
	if len(g) != 3 || len(g[0]) != 2 || g[1][0].Table != "y" || g[2][0].Schema != "b" {
		t.Fatalf("byTable = %+v", g)
	}
}

func TestGidNamesTheTargetMergeAndPass(t *testing.T) {
	if g := gidBase("node_s_b", 12, "p1"); g != "steep_repl_merge_node_s_b_12_p1" {
		t.Fatalf("gidBase = %q", g)
	}
}
