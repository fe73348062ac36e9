package runner

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"slices"
	"sort"
	"sync"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/steepdb/steep_repl/internal/api"
	"github.com/steepdb/steep_repl/internal/dbconn"
)

// Handler runs one job. ctx is cancelled when a cancel is requested, the lease is lost or the
// sidecar shuts down; context.Cause(ctx) says which. A nil error means success.
type Handler func(ctx context.Context, job *Job) (result map[string]any, err error)

// Job is a claimed job handed to a Handler.
type Job struct {
	api.ClaimedJob
	// DB is the sidecar's pool on the node, for handlers that record progress.
	DB *pgxpool.Pool

	mu         sync.Mutex
	checkpoint map[string]any
}

// SetCheckpoint records progress that the next heartbeat saves, so a retried job resumes.
func (j *Job) SetCheckpoint(cp map[string]any) {
	j.mu.Lock()
	j.checkpoint = cp
	j.mu.Unlock()
}

func (j *Job) takeCheckpoint() map[string]any {
	j.mu.Lock()
	defer j.mu.Unlock()
	cp := j.checkpoint
	j.checkpoint = nil
	return cp
}

// Causes of a handler's context being cancelled.
var (
	ErrCancelRequested = errors.New("cancel requested")
	ErrLeaseLost       = errors.New("lease lost")
	ErrShutdown        = errors.New("sidecar shutting down")
)

// retryable marks a handler error as worth another attempt.
type retryable struct{ err error }

func (r retryable) Error() string { return r.err.Error() }
func (r retryable) Unwrap() error { return r.err }

// Retryable wraps err so the job is requeued with backoff while attempts remain.
func Retryable(err error) error { return retryable{err} }

// Config configures a Runner.
type Config struct {
	// ConnString is the node's database ("" = libpq environment).
	ConnString string
	// Worker names this sidecar in leases (default host:pid).
	Worker string
	// Lease is how long a claim lasts without a heartbeat (default 30s; heartbeats every Lease/3).
	Lease time.Duration
	// PollInterval is the fallback poll when no NOTIFY arrives (default 2s).
	PollInterval time.Duration
	// Concurrency is how many jobs run at once (default 2), not counting the control slots.
	Concurrency int
	// ControlKinds are the short control jobs (a cancel, a delete, an expiry: DefaultControlKinds
	// when nil) that ControlConcurrency more slots are kept for: those slots claim only these
	// kinds, so one starts within a poll even while long jobs fill every other slot (which run
	// control jobs too when they are free). Kinds without a handler are ignored.
	ControlKinds []string
	// ControlConcurrency is how many slots run only ControlKinds (default 1; negative: none).
	ControlConcurrency int
	// TimeLimit is how long one attempt of a job may run: then it is cancelled and finished as
	// failed with "job N (kind) exceeded its time limit of X" (default DefaultTimeLimit,
	// negative: none). Control kinds default to DefaultControlTimeLimit instead.
	TimeLimit time.Duration
	// TimeLimits overrides the time limit of the kinds it names (0 or negative: none).
	TimeLimits map[string]time.Duration
	// ShutdownGrace is how long running jobs may go on after a shutdown request before they
	// are released back to the queue (default 10s).
	ShutdownGrace time.Duration
	// Handlers maps job kinds to what runs them.
	Handlers map[string]Handler
	// Logger receives structured events (default: JSON on stderr).
	Logger *slog.Logger
}

func (c *Config) withDefaults() error {
	if len(c.Handlers) == 0 {
		return errors.New("runner: no job handlers")
	}
	if c.Worker == "" {
		host, _ := os.Hostname()
		c.Worker = fmt.Sprintf("%s:%d", host, os.Getpid())
	}
	if c.Lease == 0 {
		c.Lease = 30 * time.Second
	}
	if c.Lease < 300*time.Millisecond {
		return fmt.Errorf("runner: lease %s is too short (at least 300ms)", c.Lease)
	}
	if c.PollInterval <= 0 {
		c.PollInterval = 2 * time.Second
	}
	if c.Concurrency <= 0 {
		c.Concurrency = 2
	}
	if c.ControlKinds == nil {
		c.ControlKinds = DefaultControlKinds
	}
	if c.ControlConcurrency == 0 {
		c.ControlConcurrency = 1
	}
	if c.TimeLimit == 0 {
		c.TimeLimit = DefaultTimeLimit
	}
	for kind := range c.TimeLimits {
		if _, ok := c.Handlers[kind]; !ok {
			return fmt.Errorf("runner: a time limit for job kind %q, which has no handler", kind)
		}
	}
	if c.ShutdownGrace <= 0 {
		c.ShutdownGrace = 10 * time.Second
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.NewJSONHandler(os.Stderr, nil))
	}
	return nil
}

// Runner is a running sidecar job loop.
type Runner struct {
	cfg          Config
	kinds        []string // every kind with a handler
	controlKinds []string // the control kinds with a handler, claimed by the control slots
	log          *slog.Logger
	wake         chan struct{} // pokes an idle normal slot
	wakeControl  chan struct{} // pokes an idle control slot
}

// New validates cfg and returns a Runner.
func New(cfg Config) (*Runner, error) {
	if err := cfg.withDefaults(); err != nil {
		return nil, err
	}
	kinds := make([]string, 0, len(cfg.Handlers))
	for k := range cfg.Handlers {
		kinds = append(kinds, k)
	}
	sort.Strings(kinds)
	var control []string
	if cfg.ControlConcurrency > 0 {
		for _, k := range kinds {
			if slices.Contains(cfg.ControlKinds, k) {
				control = append(control, k)
			}
		}
	}
	return &Runner{cfg: cfg, kinds: kinds, controlKinds: control, log: cfg.Logger.With("worker", cfg.Worker),
		wake: make(chan struct{}, 1), wakeControl: make(chan struct{}, 1)}, nil
}

// Run works until ctx is cancelled, then gives running jobs ShutdownGrace to finish and
// releases the rest. It returns nil after a clean shutdown.
func (r *Runner) Run(ctx context.Context) error {
	r.log.Info("sidecar started", "event", "sidecar.start", "db", dbconn.DescribeURL(r.cfg.ConnString),
		"kinds", r.kinds, "lease", r.cfg.Lease.String(), "concurrency", r.cfg.Concurrency,
		"control_kinds", r.controlKinds, "control_concurrency", r.controlSlots(), "time_limit", limitString(r.cfg.TimeLimit))
	// Jobs run under their own context so a shutdown can grant them a grace period.
	jobsCtx, stopJobs := context.WithCancelCause(context.Background())
	defer stopJobs(ErrShutdown)

	pool, err := r.connectPool(ctx)
	if err != nil {
		return nil // ctx cancelled while connecting
	}
	defer pool.Close()

	go r.listen(ctx)

	var wg sync.WaitGroup
	for i := 0; i < r.cfg.Concurrency+r.controlSlots(); i++ {
		kinds, wake := r.kinds, r.wake
		if i >= r.cfg.Concurrency {
			kinds, wake = r.controlKinds, r.wakeControl
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			r.slot(ctx, jobsCtx, pool, kinds, wake)
		}()
	}
	<-ctx.Done()
	r.log.Info("sidecar stopping", "event", "sidecar.stopping", "grace", r.cfg.ShutdownGrace.String())
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(r.cfg.ShutdownGrace):
		stopJobs(ErrShutdown)
		<-done
	}
	r.log.Info("sidecar stopped", "event", "sidecar.stop")
	return nil
}

// connectPool retries with backoff until the node answers or ctx ends.
func (r *Runner) connectPool(ctx context.Context) (*pgxpool.Pool, error) {
	b := newBackoff()
	for {
		pool, err := dbconn.Pool(ctx, r.cfg.ConnString, "steep-repl sidecar", int32((r.cfg.Concurrency+r.controlSlots())*2+2))
		if err == nil {
			if err = pool.Ping(ctx); err == nil {
				return pool, nil
			}
			pool.Close()
		}
		d := b.next()
		r.log.Warn("cannot reach node; retrying", "event", "sidecar.connect_failed", "error", err.Error(), "retry_in", d.String())
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(d):
		}
	}
}

// controlSlots is how many slots run only control kinds: none when no handler is one.
func (r *Runner) controlSlots() int {
	if len(r.controlKinds) == 0 {
		return 0
	}
	return r.cfg.ControlConcurrency
}

// poke wakes one idle normal slot and one idle control slot without blocking.
func (r *Runner) poke() {
	for _, ch := range []chan struct{}{r.wake, r.wakeControl} {
		select {
		case ch <- struct{}{}:
		default:
		}
	}
}

// slot claims jobs of kinds and runs them one at a time until ctx ends; wake is its pool's
// poke channel.
func (r *Runner) slot(ctx, jobsCtx context.Context, pool *pgxpool.Pool, kinds []string, wake chan struct{}) {
	b := newBackoff()
	for ctx.Err() == nil {
		job, err := r.claim(ctx, pool, kinds)
		if err != nil {
			if ctx.Err() != nil {
				return
			}
			d := b.next()
			r.log.Warn("claim failed; retrying", "event", "job.claim_failed", "error", err.Error(), "retry_in", d.String())
			sleepCtx(ctx, d)
			continue
		}
		b.reset()
		if job == nil {
			select {
			case <-ctx.Done():
				return
			case <-wake:
			case <-time.After(r.cfg.PollInterval):
			}
			continue
		}
		r.poke() // more may be waiting: let another idle slot look
		r.execute(jobsCtx, pool, &Job{ClaimedJob: *job, DB: pool})
	}
}

// claim takes the next job of kinds. The claim itself is not cut short by a shutdown: a claim
// the server committed after the client gave up would leave the job running under this
// sidecar's lease until it expired. A job claimed as the shutdown began is released at once.
func (r *Runner) claim(ctx context.Context, pool *pgxpool.Pool, kinds []string) (*api.ClaimedJob, error) {
	cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), claimTimeout)
	defer cancel()
	job, err := api.ClaimJob(cctx, pool, r.cfg.Worker, kinds, r.cfg.Lease)
	if err != nil || job == nil || ctx.Err() == nil {
		return job, err
	}
	if rerr := api.ReleaseJob(cctx, pool, job.ID, r.cfg.Worker); rerr != nil {
		r.log.Error("release failed; the lease will expire", "event", "job.release_failed", "job", job.ID, "error", rerr.Error())
	} else {
		r.log.Info("job released for another sidecar", "event", "job.released", "job", job.ID, "kind", job.Kind)
	}
	return nil, ctx.Err()
}

// claimTimeout bounds one claim query.
const claimTimeout = 30 * time.Second

func sleepCtx(ctx context.Context, d time.Duration) {
	select {
	case <-ctx.Done():
	case <-time.After(d):
	}
}

// ArgString is the job's string argument key, or an error naming it when it is missing or empty.
func (j *Job) ArgString(key string) (string, error) {
	v, _ := j.Args[key].(string)
	if v == "" {
		return "", fmt.Errorf("job %d (%s): args lack %s", j.ID, j.Kind, key)
	}
	return v, nil
}

// ArgInt is the job's positive integer argument key, or an error naming it.
func (j *Job) ArgInt(key string) (int64, error) {
	v, ok := j.Args[key].(float64)
	if !ok || v <= 0 || v != float64(int64(v)) {
		return 0, fmt.Errorf("job %d (%s): args lack a positive integer %s", j.ID, j.Kind, key)
	}
	return int64(v), nil
}
