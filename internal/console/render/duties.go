package render

import (
	"fmt"
	"strings"
	"time"

	"github.com/steepdb/steep_repl/internal/console/model"
	"github.com/steepdb/steep_repl/internal/progress"
)

// DutyColumns are the titles of the duties view.
var DutyColumns = []string{"NODE", "DUTY", "HEALTH", "FAILURES", "LAST OK", "LAST ERROR", "NEXT TRY", "ERROR"}

// NoDuties is the duties view's line when no connected node records its duties.
const NoDuties = "no supervisor duties recorded on the connected nodes (extension 1.1 and steep_repl_admin read them)"

// Clean is text made fit for one cell or line of the terminal: control characters escaped
// by progress.Text, line breaks and tabs turned into spaces. The widgets pass every text
// through it (ui.TableCell, ui.Tagged), so nothing from a server steers the terminal.
func Clean(s string) string {
	return strings.NewReplacer("\r\n", " ", "\n", " ", "\t", " ").Replace(progress.Text(s))
}

// SafeText is text from a server (an error, a message) as one line: Clean, with runs of
// spaces folded into one.
func SafeText(s string) string {
	return strings.Join(strings.Fields(Clean(s)), " ")
}

// ago is how long before now t was, "never" for nil.
func ago(t *time.Time, now time.Time) string {
	if t == nil {
		return "never"
	}
	return progress.Duration(max(0, now.Sub(*t).Seconds())) + " ago"
}

// DutyCells are a duty's cells, in the order of DutyColumns: a failing duty in red with its
// failures, when it last succeeded and its error; a healthy one in green, its last error
// (if any) muted.
func DutyCells(d model.DutyRow, now time.Time) []Cell {
	health := Cell{Text: "ok", Color: ColorOK}
	errColor, next := ColorMuted, ""
	if d.Failing() {
		health = Cell{Text: "FAILING", Color: ColorBad, Bold: true}
		errColor = ColorBad
		if d.NextTryAt != nil {
			next = "in " + progress.Duration(max(0, d.NextTryAt.Sub(now).Seconds()))
		}
	}
	lastErr, errText := "", ""
	if d.LastError != nil {
		lastErr, errText = ago(d.LastErrorAt, now), SafeText(*d.LastError)
	}
	return []Cell{
		{Text: SafeText(d.Node)}, {Text: SafeText(d.Name), Bold: d.Failing()}, health,
		{Text: fmt.Sprint(d.Failures), Color: health.Color, Align: Right},
		{Text: ago(d.LastOK, now)}, {Text: lastErr, Color: errColor}, {Text: next},
		{Text: errText, Color: errColor},
	}
}

// DutyAlert is the header's warning about duties that keep failing (empty when none): the
// first one named with its failures and last success, a count of the others, and the key
// of the duties view.
func DutyAlert(s model.State, now time.Time) Line {
	failing := s.FailingDuties()
	if len(failing) == 0 {
		return nil
	}
	d := failing[0]
	text := fmt.Sprintf(" ⚠ duty %s failing on %s (%d× in a row, last ok %s)", SafeText(d.Name), SafeText(d.Node),
		d.Failures, ago(d.LastOK, now))
	if n := len(failing) - 1; n > 0 {
		text += fmt.Sprintf(" and %d more", n)
	}
	return Line{{Text: " ·"}, {Text: text, Color: ColorBad, Bold: true}, {Text: " <U> duties", Color: ColorBad}}
}
