package cli

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/steepdb/steep_repl/internal/api"
	"github.com/steepdb/steep_repl/internal/progress"
)

func jobCommands() []command {
	var argsJSON, node, state string
	var maxAttempts, limit int
	var wait bool
	return []command{{
		name: "job enqueue", args: "KIND", summary: "queue a job for a sidecar (kinds: noop, sleep)",
		example: `steep-repl job enqueue sleep --args '{"seconds": 5}' --wait`,
		flags: func(fs *flag.FlagSet) {
			fs.StringVar(&argsJSON, "args", "{}", "job arguments, a JSON object")
			fs.StringVar(&node, "node", "", "node the job concerns")
			fs.IntVar(&maxAttempts, "max-attempts", 3, "attempts before the job fails")
			fs.BoolVar(&wait, "wait", false, "wait until the job is finished; exit 1 unless it succeeded")
		},
		run: func(ctx context.Context, env *Env, fs *flag.FlagSet, args []string) error {
			if len(args) != 1 {
				return usageError{"need a job KIND"}
			}
			if kinds := jobKinds(); !slices.Contains(kinds, args[0]) {
				return usageError{fmt.Sprintf("unknown job kind %q: no sidecar would run it (kinds: %s)", args[0], strings.Join(kinds, ", "))}
			}
			a, err := jobArgs(argsJSON)
			if err != nil {
				return err
			}
			if maxAttempts < 1 {
				return usageError{fmt.Sprintf("--max-attempts must be at least 1, not %d", maxAttempts)}
			}
			return withConn(ctx, env, func(db api.DB) error {
				id, err := api.EnqueueJob(ctx, db, args[0], a, node, maxAttempts)
				if err != nil {
					return err
				}
				fmt.Fprintf(env.Stdout, "job %d queued\n", id)
				if !wait {
					return nil
				}
				return waitJob(ctx, env, db, id)
			})
		},
	}, {
		name: "job list", summary: "list the newest jobs",
		example: "steep-repl job list --state running",
		flags: func(fs *flag.FlagSet) {
			fs.StringVar(&state, "state", "", "only jobs in this state (queued, running, succeeded, failed, cancelled)")
			fs.IntVar(&limit, "limit", 50, "at most this many jobs")
		},
		run: func(ctx context.Context, env *Env, fs *flag.FlagSet, args []string) error {
			if state != "" && !slices.Contains(jobStates, state) {
				return usageError{fmt.Sprintf("unknown job state %q (states: %s)", state, strings.Join(jobStates, ", "))}
			}
			if limit < 1 {
				return usageError{fmt.Sprintf("--limit must be at least 1, not %d", limit)}
			}
			return withConn(ctx, env, func(db api.DB) error {
				jobs, err := api.ListJobs(ctx, db, state, limit)
				if err != nil {
					return err
				}
				tw := tabwriter.NewWriter(env.Stdout, 0, 4, 2, ' ', 0)
				fmt.Fprintln(tw, "ID\tKIND\tSTATE\tATTEMPT\tWORKER\tCREATED\tERROR")
				for _, j := range jobs {
					fmt.Fprintf(tw, "%d\t%s\t%s\t%d/%d\t%s\t%s\t%s\n", j.ID, progress.Escape(j.Kind), progress.Escape(j.State),
						j.Attempt, j.MaxAttempts, progress.Escape(deref(j.LeaseOwner)), j.CreatedAt.Local().Format(time.DateTime),
						oneLine(deref(j.Error)))
				}
				return tw.Flush()
			})
		},
	}, {
		name: "job show", args: "ID", summary: "show one job as JSON",
		example: "steep-repl job show 42",
		run: func(ctx context.Context, env *Env, fs *flag.FlagSet, args []string) error {
			id, err := jobID(args)
			if err != nil {
				return err
			}
			return withConn(ctx, env, func(db api.DB) error {
				j, err := api.GetJob(ctx, db, id)
				if err != nil {
					return err
				}
				enc := json.NewEncoder(env.Stdout)
				enc.SetIndent("", "  ")
				return enc.Encode(j)
			})
		},
	}, {
		name: "job cancel", args: "ID", summary: "cancel a queued job, or ask a running job's sidecar to stop",
		example: "steep-repl job cancel 42",
		run: func(ctx context.Context, env *Env, fs *flag.FlagSet, args []string) error {
			id, err := jobID(args)
			if err != nil {
				return err
			}
			return withConn(ctx, env, func(db api.DB) error {
				st, err := api.CancelJob(ctx, db, id)
				if err != nil {
					return err
				}
				if st == api.JobRunning {
					fmt.Fprintf(env.Stdout, "job %d: cancel requested; its sidecar stops at its next heartbeat\n", id)
				} else {
					fmt.Fprintf(env.Stdout, "job %d is %s\n", id, st)
				}
				return nil
			})
		},
	}}
}

// jobStates are the states of steep_repl.jobs.state, for --state.
var jobStates = []string{api.JobQueued, api.JobRunning, api.JobSucceeded, api.JobFailed, api.JobCancelled}

// jobArgs parses --args: a JSON object.
func jobArgs(argsJSON string) (map[string]any, error) {
	var a map[string]any
	dec := json.NewDecoder(strings.NewReader(argsJSON))
	err := dec.Decode(&a)
	var typ *json.UnmarshalTypeError
	if err != nil && !errors.As(err, &typ) {
		var syntax *json.SyntaxError
		if errors.As(err, &syntax) {
			err = fmt.Errorf("%w at byte %d", err, syntax.Offset)
		}
		return nil, usageError{fmt.Sprintf("--args %q is not valid JSON (%v); give an object such as '{\"seconds\": 5}'", argsJSON, err)}
	}
	if err != nil || a == nil || dec.More() {
		return nil, usageError{fmt.Sprintf("--args must be a JSON object such as '{\"seconds\": 5}', not %q", argsJSON)}
	}
	return a, nil
}

func jobID(args []string) (int64, error) {
	if len(args) != 1 {
		return 0, usageError{"need a job ID"}
	}
	id, err := strconv.ParseInt(args[0], 10, 64)
	if err != nil || id <= 0 {
		return 0, usageError{"job ID must be a positive integer, not " + strconv.Quote(args[0])}
	}
	return id, nil
}

// waitJob polls until the job is finalized; not succeeded is an error.
func waitJob(ctx context.Context, env *Env, db api.DB, id int64) error {
	t := time.NewTicker(200 * time.Millisecond)
	defer t.Stop()
	for {
		j, err := api.GetJob(ctx, db, id)
		if err != nil {
			return err
		}
		switch j.State {
		case api.JobSucceeded:
			res, _ := json.Marshal(j.Result)
			fmt.Fprintf(env.Stdout, "job %d succeeded on attempt %d: %s\n", id, j.Attempt, res)
			return nil
		case api.JobFailed, api.JobCancelled:
			return fmt.Errorf("job %d %s after %d attempt(s): %s", id, j.State, j.Attempt, deref(j.Error))
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-t.C:
		}
	}
}

// oneLine shortens a message to one line of at most 80 runes for a table cell, its control
// characters escaped.
func oneLine(s string) string {
	s = progress.Escape(strings.ReplaceAll(s, "\n", " "))
	if r := []rune(s); len(r) > 80 {
		s = string(r[:77]) + "..."
	}
	return s
}

func upper(s string) string { return strings.ToUpper(s) }
