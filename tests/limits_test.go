package tests

import (
	"strings"
	"testing"

	"github.com/steepdb/steep_repl/tests/harness"
)

// TestPrepareInitNeverPublishesATableWithoutReplicaIdentity: a publication of a table without a
// replica identity makes the source application's own DELETE fail, so prepare_init refuses to
// create one, creates nothing, and the application's writes go on.
func TestPrepareInitNeverPublishesATableWithoutReplicaIdentity(t *testing.T) {
	t.Parallel()
	a := manualSource(t)
	a.Exec(t, "", "CREATE TABLE bloat (v int); INSERT INTO bloat SELECT generate_series(1, 10)")
	for _, sql := range []string{
		"SELECT * FROM steep_repl.prepare_init('node_b')",
		"SELECT steep_repl.prepare_init_export('node_b')",
	} {
		code, pgErr := dbaState(t, a, sql)
		if code != "55000" || !strings.Contains(pgErr.Message, "public.bloat") || pgErr.Hint == "" {
			t.Fatalf("%s: SQLSTATE %q %v, want 55000 naming public.bloat with a hint", sql, code, pgErr)
		}
	}
	created := harness.QueryOne[string](t, a, "", `SELECT format('slots=%s publications=%s jobs=%s',
		(SELECT count(*) FROM pg_replication_slots), (SELECT count(*) FROM pg_publication), (SELECT count(*) FROM steep_repl.jobs))`)
	if created != "slots=0 publications=0 jobs=0" {
		t.Fatalf("a refused prepare_init created %s", created)
	}
	a.Exec(t, "", "DELETE FROM bloat WHERE v = 1; UPDATE bloat SET v = 0 WHERE v = 2")
}
