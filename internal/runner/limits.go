package runner

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"
)

// DefaultControlKinds are the short control jobs that slots are kept for (Config.ControlKinds):
// a no-op, an init's cancel, and a snapshot's delete and slot expiry. None of them waits for
// data to move, so one always starts within seconds, however long the other jobs run.
var DefaultControlKinds = []string{"init.cancel", "noop", "snapshot.delete", "snapshot.expire"}

// DefaultTimeLimit is how long one attempt of a job may run unless configured otherwise: long
// enough for a multi-terabyte snapshot at ordinary speeds, short enough that a job stalled or
// throttled to a crawl does not hold a slot, a slot on the source or the xmin horizon for ever.
const DefaultTimeLimit = 72 * time.Hour

// DefaultControlTimeLimit is the time limit of the control kinds unless configured otherwise.
const DefaultControlTimeLimit = 10 * time.Minute

// ErrTimeLimit is the cause of a handler's context being cancelled when its job ran longer
// than its kind's time limit (the cause is a *TimeLimitError, which matches it). The attempt
// is final: the job is finished as failed.
var ErrTimeLimit = errors.New("job time limit exceeded")

// TimeLimitError says which job ran past its time limit.
type TimeLimitError struct {
	Job   int64
	Kind  string
	Limit time.Duration
}

func (e *TimeLimitError) Error() string {
	return fmt.Sprintf("job %d (%s) exceeded its time limit of %s", e.Job, e.Kind, limitString(e.Limit))
}

// Is makes errors.Is(err, ErrTimeLimit) true.
func (e *TimeLimitError) Is(target error) bool { return target == ErrTimeLimit }

// timeLimit is the time limit of kind, 0 for none.
func (r *Runner) timeLimit(kind string) time.Duration {
	d, ok := r.cfg.TimeLimits[kind]
	switch {
	case !ok && r.isControl(kind):
		d = DefaultControlTimeLimit
	case !ok:
		d = r.cfg.TimeLimit
	}
	return max(d, 0)
}

func (r *Runner) isControl(kind string) bool { return slices.Contains(r.cfg.ControlKinds, kind) }

// limitString formats a time limit without zero units: "72h", "10m", "1m30s", "1.5s"; "none"
// for no limit.
func limitString(d time.Duration) string {
	if d <= 0 {
		return "none"
	}
	s := d.String()
	if strings.HasSuffix(s, "m0s") {
		s = strings.TrimSuffix(s, "0s")
	}
	if strings.HasSuffix(s, "h0m") {
		s = strings.TrimSuffix(s, "0m")
	}
	return s
}
