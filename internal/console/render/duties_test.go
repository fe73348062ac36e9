package render

import (
	"strings"
	"testing"
	"time"

	"github.com/steepdb/steep_repl/internal/api"
	"github.com/steepdb/steep_repl/internal/console/model"
)

func TestSafeTextEscapesControlsAndFoldsLines(t *testing.T) {
	got := SafeText("a\x1b[2Jb\u009bc\nd\t e\x7f")
	if got != `a\x1b[2Jb\u009bc d e\u007f` {
		t.Errorf("SafeText = %q", got)
	}
}

func TestDutyCellsAndAlert(t *testing.T) {
	now := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	ok := now.Add(-90 * time.Second)
	failing := model.DutyRow{Node: "node_a", Duty: api.Duty{Name: "inits", Failures: 4, LastOK: &ok,
		LastError: strPtr("boom\x1b]0;x\x07"), LastErrorAt: &now, NextTryAt: timePtr(now.Add(8 * time.Second))}}
	cells := DutyCells(failing, now)
	var text []string
	for _, c := range cells {
		text = append(text, c.Text)
	}
	if got := strings.Join(text, "|"); got != `node_a|inits|FAILING|4|1m30s ago|0s ago|in 8s|boom\x1b]0;x\x07` {
		t.Errorf("cells %q", got)
	}
	if cells[2].Color != ColorBad || cells[7].Color != ColorBad {
		t.Error("a failing duty is not red")
	}
	healthy := model.DutyRow{Node: "node_a", Duty: api.Duty{Name: "drift"}}
	if c := DutyCells(healthy, now); c[2].Text != "ok" || c[2].Color != ColorOK || c[4].Text != "never" {
		t.Errorf("healthy cells %+v", c)
	}

	st := model.State{Duties: []model.DutyRow{failing, healthy}}
	if got := DutyAlert(st, now).Text(); got != " · ⚠ duty inits failing on node_a (4× in a row, last ok 1m30s ago) <U> duties" {
		t.Errorf("alert %q", got)
	}
	st.Duties = append(st.Duties, model.DutyRow{Node: "node_b", Duty: api.Duty{Name: "drift", Failures: 1}})
	if got := DutyAlert(st, now).Text(); !strings.Contains(got, "and 1 more") {
		t.Errorf("alert of two %q", got)
	}
	if DutyAlert(model.State{Duties: []model.DutyRow{healthy}}, now) != nil {
		t.Error("an alert without a failing duty")
	}
}

func strPtr(s string) *string        { return &s }
func timePtr(t time.Time) *time.Time { return &t }
