package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/steepdb/steep_repl/internal/api"
	"github.com/steepdb/steep_repl/internal/progress"
)

// follower follows an init until it ends, --timeout passes or ctx is cancelled.
type follower struct {
	target, source string
	// reinit follows a reinit (start_reinit): its messages say so and how to retry it.
	reinit     bool
	timeout    time.Duration
	quiet      bool
	mode       followMode
	color      bool
	out, human io.Writer  // progress display; messages
	width      func() int // terminal columns, 0 when unknown
}

// newFollower follows target's init or reinit on env's terminal (or as NDJSON with jsonProgress,
// the messages then going to stderr).
func newFollower(env *Env, target string, timeout time.Duration, quiet, jsonProgress, noColor bool) *follower {
	tty := isTerminal(env.Stdout)
	f := &follower{
		target: target, timeout: timeout, quiet: quiet,
		mode:  chooseMode(jsonProgress, quiet, tty, os.Getenv("TERM")),
		color: useColor(tty, noColor, os.Getenv("NO_COLOR"), os.Getenv("TERM")),
		out:   env.Stdout, human: env.Stdout, width: termWidth(env.Stdout),
	}
	if jsonProgress {
		f.human = env.Stderr
	}
	return f
}

func (f *follower) run(ctx context.Context, db api.DB) error {
	if f.timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeoutCause(ctx, f.timeout, errFollowTimeout)
		defer cancel()
	}
	var gate lineGate
	var paint progress.Painter
	defer func() { fmt.Fprint(f.out, paint.End()) }()
	var last *progress.Snapshot
	tick := time.NewTicker(pollInterval)
	defer tick.Stop()
	for {
		p, err := api.GetInitProgress(ctx, db, f.target)
		if err != nil {
			return f.stopped(ctx, last, err)
		}
		state := ""
		if p == nil {
			// A cancel forgets the progress: the node's state tells how it ended.
			n, err := findNode(ctx, db, f.target)
			if err != nil {
				return f.stopped(ctx, last, err)
			}
			state = n.InitState
		} else {
			snap := snapshotOf(p, time.Now())
			last, state = &snap, p.State
			if err := f.show(snap, &gate, &paint); err != nil {
				return err
			}
		}
		if done, ok := initOutcome(state); done {
			fmt.Fprint(f.out, paint.End())
			return f.result(state, last, ok)
		}
		select {
		case <-ctx.Done():
			return f.stopped(ctx, last, ctx.Err())
		case <-tick.C:
		}
	}
}

// show displays one sample according to the mode.
func (f *follower) show(snap progress.Snapshot, gate *lineGate, paint *progress.Painter) error {
	switch f.mode {
	case modeJSON:
		b, err := progress.JSON(snap)
		if err != nil {
			return err
		}
		fmt.Fprintf(f.out, "%s\n", b)
	case modeTTY:
		fmt.Fprint(terminal(f.out), paint.Frame(progress.Line(snap, f.color), progress.Detail(snap), f.width()))
	case modePlain:
		if gate.changed(snap.State, snap.Percent) {
			fmt.Fprintln(f.out, progress.Line(snap, false))
		}
	}
	return nil
}

// result reports the end of an init: the summary line on success, an error otherwise.
func (f *follower) result(state string, last *progress.Snapshot, ok bool) error {
	if ok {
		if last != nil {
			fmt.Fprintln(f.human, progress.Summary(*last))
		}
		return nil
	}
	if f.reinit {
		return f.reinitResult(state, last)
	}
	retry := fmt.Sprintf("'steep-repl init %s --from %s'", f.target, f.source)
	switch {
	case state == api.StateUninitialized:
		return fmt.Errorf("init of %s from %s was cancelled; %s is UNINITIALIZED (start again with %s)",
			f.target, f.source, f.target, retry)
	case state == api.StateFailed && last != nil:
		return fmt.Errorf("%s (clean up with 'steep-repl init cancel %s', or retry with %s)",
			progress.Summary(*last), f.target, retry)
	}
	return fmt.Errorf("init of %s from %s ended in state %s", f.target, f.source, upper(state))
}

// reinitResult reports a reinit that did not end SYNCHRONIZED.
func (f *follower) reinitResult(state string, last *progress.Snapshot) error {
	retry := fmt.Sprintf("retry with 'steep-repl reinit %s ...'", f.target)
	switch {
	case state == api.StateDiverged:
		return fmt.Errorf("reinit of %s was cancelled; %s is DIVERGED, the tables in scope empty and not replicated (%s)",
			f.target, f.target, retry)
	case state == api.StateFailed && last != nil:
		return fmt.Errorf("%s (%s)", progress.Summary(*last), retry)
	}
	return fmt.Errorf("reinit of %s ended in state %s", f.target, upper(state))
}

// stopped explains why following ended early: --timeout, an interrupt, or err.
func (f *follower) stopped(ctx context.Context, last *progress.Snapshot, err error) error {
	where := ""
	if last != nil {
		where = fmt.Sprintf(" (%s at %.1f%%)", upper(last.State), last.Percent)
	}
	next := fmt.Sprintf("the init goes on: watch it with 'steep-repl init status %s', stop it with 'steep-repl init cancel %s'",
		f.target, f.target)
	switch {
	case errors.Is(context.Cause(ctx), errFollowTimeout):
		return fmt.Errorf("init of %s not finished after %s%s; %s", f.target, f.timeout, where, next)
	case ctx.Err() != nil:
		return fmt.Errorf("stopped following the init of %s%s; %s", f.target, where, next)
	}
	return fmt.Errorf("follow init of %s: %w", f.target, err)
}
