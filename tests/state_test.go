package tests

import (
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/steepdb/steep_repl/internal/api"
	"github.com/steepdb/steep_repl/tests/harness"
)

var allStates = []string{"uninitialized", "preparing", "copying", "catching_up", "synchronized",
	"reinitializing", "diverged", "failed"}

// designTransitions is the state machine of DESIGN.md, written out independently of the SQL.
var designTransitions = map[[2]string]bool{
	{"uninitialized", "preparing"}: true, {"preparing", "copying"}: true,
	{"copying", "catching_up"}: true, {"catching_up", "synchronized"}: true,
	{"preparing", "failed"}: true, {"copying", "failed"}: true,
	{"catching_up", "failed"}: true, {"reinitializing", "failed"}: true,
	{"preparing", "uninitialized"}: true, {"copying", "uninitialized"}: true,
	{"catching_up", "uninitialized"}: true, {"reinitializing", "uninitialized"}: true,
	{"synchronized", "reinitializing"}: true, {"reinitializing", "catching_up"}: true,
	{"synchronized", "diverged"}: true,
	{"failed", "preparing"}:      true, {"failed", "uninitialized"}: true,
	{"diverged", "reinitializing"}: true, {"failed", "reinitializing"}: true,
	{"reinitializing", "diverged"}: true,
}

// pathTo is a legal walk from uninitialized to state.
func pathTo(state string) []string {
	paths := map[string][]string{
		"uninitialized":  {},
		"preparing":      {"preparing"},
		"copying":        {"preparing", "copying"},
		"catching_up":    {"preparing", "copying", "catching_up"},
		"synchronized":   {"preparing", "copying", "catching_up", "synchronized"},
		"reinitializing": {"preparing", "copying", "catching_up", "synchronized", "reinitializing"},
		"diverged":       {"preparing", "copying", "catching_up", "synchronized", "diverged"},
		"failed":         {"preparing", "failed"},
	}
	return paths[state]
}

func registerAt(t *testing.T, n *harness.Node, name, state string) {
	t.Helper()
	n.Exec(t, "", "SELECT steep_repl.register_node($1, 'host=127.0.0.1 port=1', false)", name)
	for _, s := range pathTo(state) {
		n.Exec(t, "", "SELECT steep_repl.transition($1, $2, 'walk')", name, s)
	}
}

func TestTransitionTableIsExactlyTheDesignedStateMachine(t *testing.T) {
	t.Parallel()
	n := setupNode(t)
	rows, err := n.Pool(t, "").Query(t.Context(), "SELECT from_state, to_state FROM steep_repl.init_transitions")
	if err != nil {
		t.Fatal(err)
	}
	got := map[[2]string]bool{}
	for rows.Next() {
		var f, to string
		if err := rows.Scan(&f, &to); err != nil {
			t.Fatal(err)
		}
		got[[2]string{f, to}] = true
	}
	if rows.Err() != nil {
		t.Fatal(rows.Err())
	}
	for tr := range designTransitions {
		if !got[tr] {
			t.Errorf("transition %s -> %s of the design is missing", tr[0], tr[1])
		}
	}
	for tr := range got {
		if !designTransitions[tr] {
			t.Errorf("transition %s -> %s is not in the design", tr[0], tr[1])
		}
	}
}

// TestInitStatesTableIsTheOneList proves the Go constants, the tests' list and every state column
// follow steep_repl.init_states, and that a progress row shows its node's state.
func TestInitStatesTableIsTheOneList(t *testing.T) {
	t.Parallel()
	n := setupNodeWith(t, idleSupervisor)
	got := harness.QueryOne[[]string](t, n, "", "SELECT array_agg(state ORDER BY position) FROM steep_repl.init_states")
	if !slices.Equal(got, api.States) || !slices.Equal(got, allStates) {
		t.Fatalf("steep_repl.init_states is %v; api.States is %v; the tests know %v", got, api.States, allStates)
	}
	if code, _ := sqlState(t, n, "UPDATE steep_repl.nodes SET init_state = 'bogus' WHERE name = 'node_a'"); code != "23503" {
		t.Fatalf("a state outside init_states: SQLSTATE %q, want 23503", code)
	}
	n.Exec(t, "", `INSERT INTO steep_repl.init_progress (node, source_node, method, options, publication, subscription,
		slot_name, parallel_workers, lag_threshold_bytes, stall_timeout, source_timeout)
		VALUES ('node_a', 'node_x', 'snapshot', '{}', 'p', 's', 's', 1, 0, '1 minute', '1 minute')`)
	for _, s := range pathTo("synchronized") {
		n.Exec(t, "", "SELECT steep_repl.transition('node_a', $1, 'walk')", s)
		if ph := harness.QueryOne[string](t, n, "", "SELECT phase FROM steep_repl.init_progress WHERE node = 'node_a'"); ph != s {
			t.Fatalf("after transition to %s init_progress.phase is %s", s, ph)
		}
	}
}

func TestEveryLegalTransitionIsAcceptedAndRecorded(t *testing.T) {
	t.Parallel()
	n := setupNode(t)
	i := 0
	for tr := range designTransitions {
		i++
		name := fmt.Sprintf("legal_%d", i)
		registerAt(t, n, name, tr[0])
		// Accepted in any case, stored lowercase.
		got := harness.QueryOne[string](t, n, "", "SELECT steep_repl.transition($1, $2, 'test reason')", name, strings.ToUpper(tr[1]))
		if got != tr[1] {
			t.Fatalf("%s -> %s returned %q", tr[0], tr[1], got)
		}
		if st := harness.QueryOne[string](t, n, "", "SELECT init_state FROM steep_repl.nodes WHERE name = $1", name); st != tr[1] {
			t.Fatalf("%s -> %s: node is %s", tr[0], tr[1], st)
		}
		ev := harness.QueryOne[string](t, n, "", `SELECT format('%s %s %s %s', event, from_state, to_state, detail->>'reason')
			FROM steep_repl.events WHERE node = $1 ORDER BY id DESC LIMIT 1`, name)
		if want := fmt.Sprintf("init.state_change %s %s test reason", tr[0], tr[1]); ev != want {
			t.Fatalf("last event %q, want %q", ev, want)
		}
	}
	if failed := harness.QueryOne[string](t, n, "", "SELECT coalesce(string_agg(name, ','), '') FROM steep_repl.nodes WHERE init_state = 'failed' AND last_error IS NULL"); failed != "" {
		t.Fatalf("failed nodes without a reason: %s", failed)
	}
}

func TestEveryIllegalTransitionIsRejectedAndChangesNothing(t *testing.T) {
	t.Parallel()
	n := setupNode(t)
	for _, from := range allStates {
		name := "at_" + from
		registerAt(t, n, name, from)
		events := harness.QueryOne[int64](t, n, "", "SELECT count(*) FROM steep_repl.events")
		for _, to := range allStates {
			if designTransitions[[2]string{from, to}] {
				continue
			}
			code, pgErr := sqlState(t, n, "SELECT steep_repl.transition($1, $2, 'nope')", name, to)
			if code != "55000" {
				t.Fatalf("%s -> %s: SQLSTATE %q, want 55000 (object_not_in_prerequisite_state)", from, to, code)
			}
			if !strings.Contains(pgErr.Message, "illegal init state transition") || pgErr.Hint == "" {
				t.Fatalf("%s -> %s: unclear error %q (hint %q)", from, to, pgErr.Message, pgErr.Hint)
			}
			if st := harness.QueryOne[string](t, n, "", "SELECT init_state FROM steep_repl.nodes WHERE name = $1", name); st != from {
				t.Fatalf("%s -> %s rejected but the state changed to %s", from, to, st)
			}
		}
		if got := harness.QueryOne[int64](t, n, "", "SELECT count(*) FROM steep_repl.events"); got != events {
			t.Fatalf("rejected transitions from %s recorded %d events", from, got-events)
		}
	}
}

func TestTransitionNotifiesListeners(t *testing.T) {
	t.Parallel()
	n := setupNode(t)
	conn, err := n.Pool(t, "").Acquire(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Release()
	if _, err := conn.Exec(t.Context(), "LISTEN steep_repl_events"); err != nil {
		t.Fatal(err)
	}
	n.Exec(t, "", "SELECT steep_repl.transition('node_a', 'preparing', 'go')")
	note, err := conn.Conn().WaitForNotification(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{`"node" : "node_a"`, `"to" : "preparing"`, `"from" : "uninitialized"`} {
		if !strings.Contains(note.Payload, want) {
			t.Fatalf("payload %s lacks %s", note.Payload, want)
		}
	}
}
