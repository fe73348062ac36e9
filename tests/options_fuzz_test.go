package tests

import (
	"context"
	"encoding/json"
	"testing"

	"github.com/steepdb/steep_repl/tests/harness"
)

// optionCheckers are the functions that validate the options of start_init, generate_snapshot
// (and two-phase inits) and apply_snapshot before anything is probed or created.
var optionCheckers = []string{
	"SELECT steep_repl._init_options($1::jsonb)",
	"SELECT steep_repl._snapshot_generate_options($1::jsonb)",
	"SELECT steep_repl._snapshot_apply_options($1::jsonb)",
}

// acceptedOptionErrors are the only SQLSTATEs an option checker may raise: bad value, NULL,
// unknown object. Anything else (an internal error, an overflow, a cast failure) is a bug.
var acceptedOptionErrors = map[string]bool{"22023": true, "22004": true, "42704": true}

// createdSQL counts what an API call could create.
const createdSQL = `SELECT format('jobs=%s snapshots=%s inits=%s events=%s', (SELECT count(*) FROM steep_repl.jobs),
  (SELECT count(*) FROM steep_repl.snapshots), (SELECT count(*) FROM steep_repl.init_progress),
  (SELECT count(*) FROM steep_repl.events))`

// FuzzOptionCheckers feeds JSON objects to every option checker on a real server: each input is
// accepted or refused with a 22023/22004/42704 error, never another error, and checking it never
// creates a job, a snapshot or an init.
func FuzzOptionCheckers(f *testing.F) {
	for _, seed := range []string{
		`{}`, `{"parallel": 4}`, `{"parallel": "NaN"}`, `{"lag_threshold": -1}`, `{"lag_threshold": 1e300}`,
		`{"stall_timeout": "Infinity"}`, `{"source_timeout": 0.0001}`, `{"tables": ["a.b"], "schemas": null}`,
		`{"tables": "x"}`, `{"force": "yes"}`, `{"schema_sync": "lax"}`, `{"confirm": 1}`,
		`{"compression": "brotli"}`, `{"max_rate": 1}`, `{"slot_expiry": 9999999999999}`, `{"subscribe": "t"}`,
		`{"error_tolerance": -3}`, `{"truncate": null}`, `{"parallel": 1.5}`, `{"large_table_threshold": true}`,
		`{"max_rate": "12abc"}`, `{"parallel": 99999999999999999999999}`, `{"tables": [1, 2]}`,
	} {
		f.Add(seed)
	}
	n := setupNodeWith(f, idleSupervisor)
	f.Fuzz(func(t *testing.T, input string) {
		var obj map[string]any
		if json.Unmarshal([]byte(input), &obj) != nil || obj == nil {
			t.Skip("not a JSON object")
		}
		before := harness.QueryOne[string](t, n, "", createdSQL)
		for _, check := range optionCheckers {
			_, err := n.Pool(t, "").Exec(context.Background(), check, input)
			if err == nil {
				continue
			}
			if code := sqlStateOf(err); !acceptedOptionErrors[code] {
				t.Fatalf("%s with %s: %v (SQLSTATE %s): only 22023, 22004 or 42704 may refuse options", check, input, err, code)
			}
		}
		if after := harness.QueryOne[string](t, n, "", createdSQL); after != before {
			t.Fatalf("checking options %s changed the state", input)
		}
	})
}
