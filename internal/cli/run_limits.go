package cli

import (
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/steepdb/steep_repl/internal/runner"
)

// timeLimits is the value of run --job-time-limit, given as DURATION (every kind) or
// KIND=DURATION (one kind), as often as needed; a duration of 0 means no limit.
type timeLimits struct {
	all    time.Duration // 0: not given
	byKind map[string]time.Duration
}

func (l *timeLimits) String() string {
	if l == nil {
		return ""
	}
	var parts []string
	if l.all != 0 {
		parts = append(parts, l.all.String())
	}
	for k, d := range l.byKind {
		parts = append(parts, k+"="+d.String())
	}
	sort.Strings(parts)
	return strings.Join(parts, ",")
}

func (l *timeLimits) Set(v string) error {
	kind, dur, perKind := strings.Cut(v, "=")
	if !perKind {
		dur = kind
	}
	d, err := time.ParseDuration(dur)
	if err != nil || d < 0 {
		return fmt.Errorf("%q is not DURATION or KIND=DURATION with a duration such as 90m or 72h (0: no limit)", v)
	}
	if !perKind {
		l.all = d
		if d == 0 {
			l.all = -1 // runner: negative is no limit
		}
		return nil
	}
	if l.byKind == nil {
		l.byKind = map[string]time.Duration{}
	}
	l.byKind[kind] = d
	return nil
}

// timeLimitsHelp is the --help text of --job-time-limit.
var timeLimitsHelp = fmt.Sprintf("how long one attempt of a job may run before it is cancelled and failed "+
	"(\"job N (kind) exceeded its time limit of X\"): `DURATION` for every kind or KIND=DURATION for one, repeatable; "+
	"0 is no limit (default %.0fh, the control kinds %.0fm)", runner.DefaultTimeLimit.Hours(), runner.DefaultControlTimeLimit.Minutes())

// controlHelp is the --help text of --control-concurrency.
var controlHelp = "slots kept, beyond --concurrency, for short control jobs (" + strings.Join(runner.DefaultControlKinds, ", ") +
	"), so a cancel starts within seconds while long jobs fill the others; 0: none"

// controlSlots maps --control-concurrency to runner.Config.ControlConcurrency (negative: none).
func controlSlots(n int) (int, error) {
	switch {
	case n < 0:
		return 0, usageError{fmt.Sprintf("--control-concurrency must not be negative, not %d", n)}
	case n == 0:
		return -1, nil
	}
	return n, nil
}
