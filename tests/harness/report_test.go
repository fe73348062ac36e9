package harness

import (
	"strings"
	"testing"
)

// sliceSource is a rowSource over fixed records.
type sliceSource []record

func (s *sliceSource) next() (record, bool, error) {
	if len(*s) == 0 {
		return record{}, false, nil
	}
	r := (*s)[0]
	*s = (*s)[1:]
	return r, true, nil
}

func ik(hash string, ints ...int64) record { return record{key: rowKey{ints: ints}, hash: hash} }
func tk(text string) record                { return record{key: rowKey{text: text}} }

func TestMergeKeyed(t *testing.T) {
	a := sliceSource{ik("h1", 1), ik("h2", 2), ik("h3", 3), ik("h5", 5)}
	b := sliceSource{ik("h1", 1), ik("XX", 2), ik("h4", 4), ik("h5", 5), ik("h6", 6)}
	var tr TableReport
	if err := merge(&a, &b, false, &tr); err != nil {
		t.Fatal(err)
	}
	if tr.RowsA != 4 || tr.RowsB != 5 || tr.Changed != 1 || tr.MissingInB != 1 || tr.ExtraInB != 2 {
		t.Fatalf("got %+v", tr)
	}
	want := []string{"changed (2)", "missing in B (3)", "extra in B (4)", "extra in B (6)"}
	if strings.Join(tr.Examples, "|") != strings.Join(want, "|") {
		t.Errorf("examples %q, want %q", tr.Examples, want)
	}
	if tr.Equal() {
		t.Error("Equal() true")
	}
}

func TestMergeMultiset(t *testing.T) {
	a := sliceSource{tk("(1,x)"), tk("(1,x)"), tk("(2,)"), tk("(3,y)")}
	b := sliceSource{tk("(1,x)"), tk(`(2,"")`), tk("(3,y)"), tk("(3,y)"), tk("(3,y)")}
	var tr TableReport
	if err := merge(&a, &b, true, &tr); err != nil {
		t.Fatal(err)
	}
	if tr.RowsA != 4 || tr.RowsB != 5 || tr.Changed != 0 || tr.MissingInB != 2 || tr.ExtraInB != 3 {
		t.Fatalf("got %+v", tr)
	}
	if tr.Examples[0] != "missing in B (1,x)" || tr.Examples[3] != "extra in B x2 (3,y)" {
		t.Errorf("examples %q", tr.Examples)
	}
}

func TestMergeRejectsDisorder(t *testing.T) {
	a := sliceSource{ik("", 2), ik("", 1)}
	b := sliceSource{}
	if err := merge(&a, &b, false, &TableReport{}); err == nil || !strings.Contains(err.Error(), "out of order") {
		t.Fatalf("want out-of-order error, got %v", err)
	}
	dup := sliceSource{tk("a"), tk("a")}
	if err := merge(&dup, &sliceSource{}, false, &TableReport{}); err == nil {
		t.Fatal("duplicate key accepted in keyed mode")
	}
}

func TestReportString(t *testing.T) {
	r := &Report{Tables: []TableReport{
		{Schema: "public", Table: "a", RowsA: 3, RowsB: 3, ByKey: true},
		{Schema: "public", Table: "b", OnlyInA: true, RowsA: 2},
		{Schema: "s", Table: "c", RowsA: 1, RowsB: 2, ExtraInB: 1, ByKey: true, Examples: []string{"extra in B (2)"}},
	}}
	if r.Equal() {
		t.Fatal("Equal() true")
	}
	s := r.String()
	for _, want := range []string{"3 tables compared, 2 differ", "public.b: only in A (2 rows)", "s.c: rows A=1 B=2", "extra_in_b=1", "e.g. extra in B (2)"} {
		if !strings.Contains(s, want) {
			t.Errorf("String() lacks %q:\n%s", want, s)
		}
	}
	if strings.Contains(s, "public.a") {
		t.Errorf("String() lists an equal table:\n%s", s)
	}
	if got := (&Report{Tables: r.Tables[:1]}).String(); got != "1 tables compared, all equal (3 rows)" {
		t.Errorf("equal report: %q", got)
	}
}

func TestPlanTable(t *testing.T) {
	id := column{"id", "integer"}
	name := column{"name", "text"}
	p := planTable(tableMeta{cols: []column{id, name}, pk: []column{id}},
		tableMeta{cols: []column{name, {"id", "bigint"}}, pk: []column{{"id", "bigint"}}})
	if !p.intKey || strings.Join(p.key, ",") != "id" || strings.Join(p.cols, ",") != "id,name" {
		t.Errorf("plan %+v", p)
	}
	if !strings.Contains(p.schemaDiff, "column id is integer in A, bigint in B") {
		t.Errorf("schemaDiff %q", p.schemaDiff)
	}
	p = planTable(tableMeta{cols: []column{id, name}, pk: []column{name}},
		tableMeta{cols: []column{id, name, {"extra", "int"}}})
	if p.key != nil || p.intKey || !strings.Contains(p.schemaDiff, "columns only in B: extra") ||
		!strings.Contains(p.schemaDiff, "primary key is (name) in A, () in B") {
		t.Errorf("plan %+v", p)
	}
	q := tablePlan{cols: []string{"a", `we"ird`}, key: []string{"a"}}.query(qualName{"s", "t"})
	if !strings.Contains(q, `md5(ROW("a", "we""ird")::text)`) || !strings.Contains(q, `FROM "s"."t"`) ||
		!strings.Contains(q, `ORDER BY (ROW("a")::text) COLLATE "C"`) {
		t.Errorf("query %s", q)
	}
}
