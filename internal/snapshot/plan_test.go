package snapshot

import (
	"strings"
	"testing"
	"time"
)

func TestPlanLoadsParentsFirstHeaviestFirst(t *testing.T) {
	p, err := NewPlan(map[string]int64{"artist": 10, "album": 50, "track": 500, "genre": 5, "employee": 3},
		[][2]string{{"album", "artist"}, {"track", "album"}, {"track", "genre"}, {"employee", "employee"}, {"album", "elsewhere"}})
	if err != nil {
		t.Fatal(err)
	}
	var order []string
	for {
		tbl, ok := p.Next()
		if !ok {
			break
		}
		order = append(order, tbl)
		p.Done(tbl, true)
	}
	got := strings.Join(order, " ")
	if got != "artist album genre track employee" {
		t.Fatalf("order %q", got)
	}
}

func TestPlanBlocksDependentsOfAFailedTable(t *testing.T) {
	p, _ := NewPlan(map[string]int64{"a": 1, "b": 1, "c": 1, "d": 1}, [][2]string{{"b", "a"}, {"c", "b"}})
	seen := map[string]bool{}
	for {
		tbl, ok := p.Next()
		if !ok {
			break
		}
		seen[tbl] = true
		p.Done(tbl, tbl != "a")
	}
	if seen["b"] || seen["c"] || !seen["d"] {
		t.Fatalf("handed out %v", seen)
	}
	if bl := p.Blocked(); bl["b"] != "a" || bl["c"] != "a" {
		t.Fatalf("blocked %v", bl)
	}
}

func TestPlanWaitsForRunningParents(t *testing.T) {
	p, _ := NewPlan(map[string]int64{"parent": 2, "child": 1}, [][2]string{{"child", "parent"}})
	first, _ := p.Next()
	got := make(chan string)
	go func() { tbl, _ := p.Next(); got <- tbl }()
	select {
	case tbl := <-got:
		t.Fatalf("handed out %s while %s loads", tbl, first)
	case <-time.After(50 * time.Millisecond):
	}
	p.Done(first, true)
	if tbl := <-got; tbl != "child" {
		t.Fatalf("got %s", tbl)
	}
}

func TestPlanRefusesCycles(t *testing.T) {
	_, err := NewPlan(map[string]int64{"a": 1, "b": 1, "c": 1}, [][2]string{{"a", "b"}, {"b", "a"}})
	if err == nil || !strings.Contains(err.Error(), "a, b") {
		t.Fatalf("cycle: %v", err)
	}
}
