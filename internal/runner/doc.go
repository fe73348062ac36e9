// Package runner is the sidecar's job loop: it LISTENs on steep_repl_jobs, claims the kinds
// it has handlers for (SKIP LOCKED, under a lease), heartbeats every lease/3, honours cancel
// requests seen at a heartbeat, finishes each job with its result or error, reconnects with
// backoff when the server goes away, and on shutdown releases what it could not finish.
//
// It keeps no state of its own: everything it knows is in steep_repl.jobs.
package runner
