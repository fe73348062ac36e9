package runner

import (
	"context"
	"time"

	"github.com/steepdb/steep_repl/internal/api"
	"github.com/steepdb/steep_repl/internal/dbconn"
)

// listen holds a LISTEN steep_repl_jobs connection and pokes a slot on every notification,
// reconnecting with backoff; polling covers the gaps while it is down.
func (r *Runner) listen(ctx context.Context) {
	b := newBackoff()
	for ctx.Err() == nil {
		err := r.listenOnce(ctx, b)
		if ctx.Err() != nil {
			return
		}
		d := b.next()
		r.log.Warn("LISTEN connection lost; reconnecting", "event", "sidecar.listen_lost", "error", errString(err), "retry_in", d.String())
		sleepCtx(ctx, d)
	}
}

func (r *Runner) listenOnce(ctx context.Context, b *backoff) error {
	conn, err := dbconn.Connect(ctx, r.cfg.ConnString, "steep-repl sidecar listener")
	if err != nil {
		return err
	}
	defer conn.Close(context.Background())
	if err := api.ListenJobs(ctx, conn); err != nil {
		return err
	}
	b.reset()
	r.poke() // jobs may have been queued while we were away
	for {
		if _, err := conn.WaitForNotification(ctx); err != nil {
			return err
		}
		r.poke()
	}
}

// backoff doubles from 100ms to 10s.
type backoff struct{ d time.Duration }

func newBackoff() *backoff { return &backoff{} }

func (b *backoff) next() time.Duration {
	if b.d == 0 {
		b.d = 100 * time.Millisecond
	} else if b.d *= 2; b.d > 10*time.Second {
		b.d = 10 * time.Second
	}
	return b.d
}

func (b *backoff) reset() { b.d = 0 }

func errString(err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}
