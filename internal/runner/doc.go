// Package runner is the sidecar's job loop: it LISTENs on steep_repl_jobs, claims the kinds
// it has handlers for (SKIP LOCKED, under a lease), heartbeats every lease/3 (at most 2 s), honours cancel
// requests seen at a heartbeat, finishes each job with its result or error, reconnects with
// backoff when the server goes away, and on shutdown releases what it could not finish.
//
// Slow jobs cannot starve it: besides its Concurrency slots it keeps ControlConcurrency slots
// that claim only the short control kinds (DefaultControlKinds: init.cancel, snapshot.delete,
// snapshot.expire, noop), so a cancel starts within a poll while long jobs fill every other
// slot; and every attempt has its kind's time limit, after which its context is cancelled
// (ErrTimeLimit) and the job is failed with "job N (kind) exceeded its time limit of X".
//
// It keeps no state of its own: everything it knows is in steep_repl.jobs.
package runner
