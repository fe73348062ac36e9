package harness

import (
	"context"
	"strings"
	"testing"
)

// compare runs Compare on database chinook of a and b.
func compare(t *testing.T, a, b *Node, opt CompareOptions) *Report {
	t.Helper()
	r, err := Compare(context.Background(), a.Pool(t, "chinook"), b.Pool(t, "chinook"), opt)
	if err != nil {
		t.Fatalf("compare: %v", err)
	}
	return r
}

// onlyDiff checks that table is the single differing table of r, with the
// given counts, and returns its report.
func onlyDiff(t *testing.T, r *Report, schema, table string, changed, missing, extra int64) *TableReport {
	t.Helper()
	if r.Equal() {
		t.Fatalf("report is equal:\n%s", r)
	}
	for i := range r.Tables {
		tr := &r.Tables[i]
		if (tr.Schema != schema || tr.Table != table) && !tr.Equal() {
			t.Errorf("unexpected difference: %s", tr)
		}
	}
	tr := r.Table(schema, table)
	if tr == nil {
		t.Fatalf("%s.%s not in report:\n%s", schema, table, r)
	}
	if tr.Changed != changed || tr.MissingInB != missing || tr.ExtraInB != extra {
		t.Fatalf("%s: want changed=%d missing=%d extra=%d", tr, changed, missing, extra)
	}
	return tr
}

func TestCompare(t *testing.T) {
	t.Parallel()
	nodes := StartN(t, 2, testOptions())
	a, b := nodes[0], nodes[1]
	LoadChinook(t, a, "chinook")
	LoadChinook(t, b, "chinook")
	both := func(sql string) {
		t.Helper()
		a.Exec(t, "chinook", sql)
		b.Exec(t, "chinook", sql)
	}

	t.Run("equal", func(t *testing.T) {
		r := compare(t, a, b, CompareOptions{})
		if !r.Equal() || len(r.Tables) != ChinookTables {
			t.Fatalf("want %d equal tables:\n%s", ChinookTables, r)
		}
		if tr := r.Table("public", "track"); tr.RowsA != 3503 || tr.RowsB != 3503 || !tr.ByKey {
			t.Fatalf("track: %+v", tr)
		}
		AssertEqual(t, a, b, "chinook")
	})

	t.Run("changed value", func(t *testing.T) {
		b.Exec(t, "chinook", "UPDATE track SET name = name || '!' WHERE track_id = 42")
		tr := onlyDiff(t, compare(t, a, b, CompareOptions{}), "public", "track", 1, 0, 0)
		if len(tr.Examples) != 1 || tr.Examples[0] != "changed (42)" {
			t.Errorf("examples %q", tr.Examples)
		}
		b.Exec(t, "chinook", "UPDATE track SET name = left(name, -1) WHERE track_id = 42")
		AssertEqual(t, a, b, "chinook")
	})

	t.Run("changed by one microsecond", func(t *testing.T) {
		b.Exec(t, "chinook", "UPDATE invoice SET invoice_date = invoice_date + interval '1 microsecond' WHERE invoice_id = 7")
		onlyDiff(t, compare(t, a, b, CompareOptions{}), "public", "invoice", 1, 0, 0)
		b.Exec(t, "chinook", "UPDATE invoice SET invoice_date = invoice_date - interval '1 microsecond' WHERE invoice_id = 7")
		AssertEqual(t, a, b, "chinook")
	})

	t.Run("deleted row, composite key", func(t *testing.T) {
		track := QueryOne[int32](t, b, "chinook", "SELECT min(track_id) FROM playlist_track WHERE playlist_id = 1")
		b.Exec(t, "chinook", "DELETE FROM playlist_track WHERE playlist_id = 1 AND track_id = $1", track)
		tr := onlyDiff(t, compare(t, a, b, CompareOptions{}), "public", "playlist_track", 0, 1, 0)
		if tr.RowsA != tr.RowsB+1 || len(tr.Examples) != 1 || !strings.HasPrefix(tr.Examples[0], "missing in B (1,") {
			t.Errorf("%s", tr)
		}
		b.Exec(t, "chinook", "INSERT INTO playlist_track VALUES (1, $1)", track)
		AssertEqual(t, a, b, "chinook")
	})

	t.Run("extra row", func(t *testing.T) {
		b.Exec(t, "chinook", "INSERT INTO genre (genre_id, name) OVERRIDING SYSTEM VALUE VALUES (1000, 'Zydeco')")
		tr := onlyDiff(t, compare(t, a, b, CompareOptions{}), "public", "genre", 0, 0, 1)
		if tr.Examples[0] != "extra in B (1000)" {
			t.Errorf("examples %q", tr.Examples)
		}
		b.Exec(t, "chinook", "DELETE FROM genre WHERE genre_id = 1000")
		AssertEqual(t, a, b, "chinook")
	})

	t.Run("table on one side", func(t *testing.T) {
		a.Exec(t, "chinook", "CREATE TABLE only_a (id int PRIMARY KEY); INSERT INTO only_a VALUES (1), (2), (3)")
		b.Exec(t, "chinook", `CREATE SCHEMA "Extra"; CREATE TABLE "Extra"."only b" (x text)`)
		r := compare(t, a, b, CompareOptions{})
		if tr := r.Table("public", "only_a"); tr == nil || !tr.OnlyInA || tr.OnlyInB || tr.RowsA != 3 || tr.Equal() {
			t.Errorf("only_a: %+v\n%s", tr, r)
		}
		if tr := r.Table("Extra", "only b"); tr == nil || !tr.OnlyInB || tr.OnlyInA {
			t.Errorf("only b: %+v\n%s", tr, r)
		}
		if r.Equal() || !strings.Contains(r.String(), "public.only_a: only in A (3 rows)") {
			t.Errorf("report:\n%s", r)
		}
		if r := compare(t, a, b, CompareOptions{Schemas: []string{"Extra"}}); len(r.Tables) != 1 || !r.Tables[0].OnlyInB {
			t.Errorf("Schemas filter:\n%s", r)
		}
		a.Exec(t, "chinook", "DROP TABLE only_a")
		b.Exec(t, "chinook", `DROP SCHEMA "Extra" CASCADE`)
		AssertEqual(t, a, b, "chinook")
	})

	t.Run("no primary key: multiset", func(t *testing.T) {
		both("CREATE TABLE nopk (a int, b text); INSERT INTO nopk VALUES (1, 'x'), (1, 'x'), (2, NULL), (3, 'y')")
		r := compare(t, a, b, CompareOptions{})
		if tr := r.Table("public", "nopk"); !r.Equal() || tr.ByKey || tr.RowsA != 4 {
			t.Fatalf("%+v\n%s", tr, r)
		}
		b.Exec(t, "chinook", "INSERT INTO nopk VALUES (1, 'x')") // 3 copies in B, 2 in A
		tr := onlyDiff(t, compare(t, a, b, CompareOptions{}), "public", "nopk", 0, 0, 1)
		if tr.Examples[0] != "extra in B (1,x)" {
			t.Errorf("examples %q", tr.Examples)
		}
		b.Exec(t, "chinook", "DELETE FROM nopk WHERE a = 1; INSERT INTO nopk VALUES (1, 'x')") // 1 copy in B
		onlyDiff(t, compare(t, a, b, CompareOptions{}), "public", "nopk", 0, 1, 0)
		b.Exec(t, "chinook", "UPDATE nopk SET b = '' WHERE a = 2") // NULL in A, '' in B
		tr = onlyDiff(t, compare(t, a, b, CompareOptions{}), "public", "nopk", 0, 2, 1)
		if !strings.Contains(strings.Join(tr.Examples, "|"), `extra in B (2,"")`) {
			t.Errorf("examples %q", tr.Examples)
		}
		both("DROP TABLE nopk")
	})

	t.Run("text keys and session settings", func(t *testing.T) {
		both(`CREATE TABLE tk (k text PRIMARY KEY, ts timestamptz, f float8, i interval, bin bytea, j jsonb, arr int[]);
			INSERT INTO tk VALUES ('a', '2024-01-02 03:04:05.123456+02', 0.1, '1 day 2 hours', '\x00ff', '{"b": 1, "a": [1, 2]}', '{1,NULL,3}'),
				('B', 'infinity', 1e300, '-3 months', '', 'null', '{}'), ('é', NULL, 'NaN', '0', NULL, '"s"', NULL),
				('10', '2030-06-01 12:00+05:30', -0.0, '1 microsecond', 'abc', '[]', '{2}'), ('9', '1999-12-31 23:59:59.999999Z', 1.0/3, NULL, '\x', '1.50', '{-1}'),
				('a b', '2000-01-01', 2.5, '1 year', '\xdeadbeef', '{}', '{1,2}'), ('', '2000-01-01', 0, '0', '', '0', '{0}')`)
		// B's sessions default to other output formats; Compare must not care.
		b.Exec(t, "", `ALTER DATABASE chinook SET timezone = 'Asia/Tokyo';
			ALTER DATABASE chinook SET datestyle = 'German, DMY';
			ALTER DATABASE chinook SET intervalstyle = 'iso_8601';
			ALTER DATABASE chinook SET extra_float_digits = 0;
			ALTER DATABASE chinook SET bytea_output = 'escape'`)
		b.Pool(t, "chinook").Reset()
		if tz := QueryOne[string](t, b, "chinook", "SHOW timezone"); tz != "Asia/Tokyo" {
			t.Fatalf("B's sessions run with timezone %s", tz)
		}
		AssertEqual(t, a, b, "chinook")

		b.Exec(t, "chinook", "UPDATE tk SET f = f + 1e-15 WHERE k = 'é'")
		b.Exec(t, "chinook", "UPDATE tk SET f = 0.1 + 1e-16 WHERE k = 'a'")
		tr := onlyDiff(t, compare(t, a, b, CompareOptions{}), "public", "tk", 1, 0, 0)
		if tr.Examples[0] != "changed (a)" {
			t.Errorf("examples %q (NaN + 1e-15 is NaN, so only 'a' changes)", tr.Examples)
		}
		both("DROP TABLE tk")
	})

	t.Run("schema difference", func(t *testing.T) {
		b.Exec(t, "chinook", "ALTER TABLE genre ADD COLUMN extra int")
		tr := onlyDiff(t, compare(t, a, b, CompareOptions{}), "public", "genre", 0, 0, 0)
		if !strings.Contains(tr.SchemaDiff, "columns only in B: extra") {
			t.Errorf("%s", tr)
		}
		b.Exec(t, "chinook", "ALTER TABLE genre DROP COLUMN extra")
		AssertEqual(t, a, b, "chinook")
	})

	t.Run("tables option", func(t *testing.T) {
		r := compare(t, a, b, CompareOptions{Tables: []string{"public.track", "album"}})
		if len(r.Tables) != 2 || r.Tables[0].Table != "album" || r.Tables[1].Table != "track" || !r.Equal() {
			t.Errorf("report:\n%s", r)
		}
		_, err := Compare(context.Background(), a.Pool(t, "chinook"), b.Pool(t, "chinook"),
			CompareOptions{Tables: []string{"public.nope"}})
		if err == nil || !strings.Contains(err.Error(), "not found on either side") {
			t.Errorf("missing table: %v", err)
		}
	})
}
