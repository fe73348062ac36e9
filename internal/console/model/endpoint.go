package model

import (
	"context"
	"errors"
	"regexp"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/steepdb/steep_repl/internal/api"
	"github.com/steepdb/steep_repl/internal/dbconn"
)

// endpoint polls one node's database: a goroutine that connects (with backoff), LISTENs on
// steep_repl_events, polls every interval or at once on a notification, and hands each
// Reading to the model. Its polls never overlap: one goroutine, one connection.
type endpoint struct {
	target
	seed bool
	m    *Model
	// wake makes the endpoint poll now (focus changed, an action was taken).
	wake   chan struct{}
	cancel context.CancelFunc
	// last is the last successful reading (owned by the goroutine).
	last Reading
}

func newEndpoint(t target, seed bool, m *Model) *endpoint {
	return &endpoint{target: t, seed: seed, m: m, wake: make(chan struct{}, 1)}
}

// poke asks for a poll now; it never blocks.
func (e *endpoint) poke() {
	select {
	case e.wake <- struct{}{}:
	default:
	}
}

func (e *endpoint) run(ctx context.Context) {
	cfg := e.m.cfg
	backoff := cfg.MinBackoff
	e.report(Reading{Link: LinkConnecting})
	for {
		polled, err := e.session(ctx)
		if ctx.Err() != nil {
			return
		}
		if polled {
			backoff = cfg.MinBackoff
		}
		down := e.last
		down.Link, down.Reason, down.Stale = LinkUnreachable, e.reason(err), true
		e.report(down)
		if !sleep(ctx, backoff, e.wake) {
			return
		}
		backoff = min(backoff*2, cfg.MaxBackoff)
	}
}

// session connects, then polls until the connection fails; polled reports whether at least
// one poll succeeded (the backoff then starts over).
func (e *endpoint) session(ctx context.Context) (polled bool, err error) {
	cfg := e.m.cfg
	cctx, cancel := context.WithTimeout(ctx, cfg.ConnectTimeout+time.Second)
	conn, err := pgx.ConnectConfig(cctx, e.cfg.Copy())
	cancel()
	if err != nil {
		return false, err // the row names the address
	}
	defer func() {
		closeCtx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		_ = conn.Close(closeCtx)
	}()
	// LISTEN before the first poll, so no change falls between the two (a channel needs no
	// extension; without one the polls say so): events, and snapshot progress, which the
	// sidecar writes at least every 500 ms while a snapshot job runs.
	listening := false
	if !cfg.NoListen {
		if err := api.ListenEvents(ctx, conn); err != nil {
			return false, err
		}
		if err := api.ListenProgress(ctx, conn); err != nil {
			return false, err
		}
		listening = true
	}
	for {
		r, err := e.poll(ctx, conn)
		switch {
		case err != nil && (conn.IsClosed() || ctx.Err() != nil || pgconn.Timeout(err)):
			return polled, err // a poll that timed out leaves the connection unusable: reconnect
		case err != nil:
			bad := e.last
			bad.Link, bad.Reason, bad.Stale = LinkError, e.reason(err), true
			e.report(bad)
		case !r.Server.HasExtension:
			r.Link, r.Reason = LinkError, "the steep_repl extension is not installed in database "+e.cfg.Database
			e.report(r)
		default:
			polled = true
			e.last = r
			e.report(r)
		}
		interval := cfg.IdleInterval
		if Active(localState(r)) || snapshotsActive(r) {
			interval = cfg.ActiveInterval
		}
		if err := e.wait(ctx, conn, interval, listening); err != nil {
			return polled, err
		}
	}
}

// wait returns after interval, on a notification, or when poked; an error means the
// connection is lost.
func (e *endpoint) wait(ctx context.Context, conn *pgx.Conn, interval time.Duration, listening bool) error {
	if !listening {
		if !sleep(ctx, interval, e.wake) {
			return ctx.Err()
		}
		return nil
	}
	wctx, cancel := context.WithTimeout(ctx, interval)
	defer cancel()
	done := make(chan struct{})
	defer close(done)
	go func() {
		select {
		case <-e.wake:
			cancel()
		case <-done:
		case <-wctx.Done():
		}
	}()
	_, err := conn.WaitForNotification(wctx)
	if err == nil {
		// Several events of one transaction arrive together: one poll reads them all.
		for range 100 {
			dctx, dcancel := context.WithTimeout(ctx, time.Millisecond)
			_, derr := conn.WaitForNotification(dctx)
			dcancel()
			if derr != nil {
				break
			}
		}
		if conn.IsClosed() {
			return errors.New("connection lost")
		}
		return nil
	}
	if ctx.Err() != nil {
		return ctx.Err()
	}
	if wctx.Err() != nil && !conn.IsClosed() {
		return nil // the interval passed, or a poke
	}
	return err
}

// poll reads everything the console shows about this node.
func (e *endpoint) poll(ctx context.Context, conn *pgx.Conn) (Reading, error) {
	ctx, cancel := context.WithTimeout(ctx, e.m.cfg.QueryTimeout)
	defer cancel()
	r := Reading{Key: e.key, Addr: e.addr, Seed: e.seed, Link: LinkOK, At: time.Now()}
	var err error
	if r.Server, err = api.GetServerInfo(ctx, conn); err != nil || !r.Server.HasExtension {
		return r, err
	}
	if r.Registry, err = api.ListNodes(ctx, conn); err != nil {
		return r, err
	}
	for _, n := range r.Registry {
		if n.IsLocal {
			r.LocalNode = n.Name
		}
	}
	if r.Server.CanReadConninfo {
		conninfos, err := api.NodeConninfos(ctx, conn)
		if err != nil {
			return r, err
		}
		r.Peers, r.peerConfigs = e.m.peers(conninfos, r.LocalNode)
	}
	if r.LocalNode != "" {
		if r.Progress, err = api.GetInitProgress(ctx, conn, r.LocalNode); err != nil {
			return r, err
		}
		if focus := e.m.focusNode(); focus == r.LocalNode {
			r.Focus = focus
			if r.Tables, err = api.ListInitTables(ctx, conn, focus); err != nil {
				return r, err
			}
			if r.Samples, err = api.ListInitSamples(ctx, conn, focus, e.m.cfg.SampleWindow); err != nil {
				return r, err
			}
		}
	}
	if r.Subs, err = api.ListSubscriptionStats(ctx, conn, r.Server.VersionNum >= api.ConflictCountersMinVersion); err != nil {
		return r, err
	}
	if r.Slots, err = api.LogicalSlotLags(ctx, conn); err != nil {
		return r, err
	}
	if r.Events, err = api.RecentEvents(ctx, conn, "", MaxEvents); err != nil {
		return r, err
	}
	if r.Server.HasSnapshots {
		if err := readSnapshots(ctx, conn, &r); err != nil {
			return r, err
		}
	}
	if r.Server.HasDuties {
		if err := e.readDuties(ctx, conn, &r); err != nil {
			return r, err
		}
	}
	return r, nil
}

// readSnapshots reads the node's snapshots and their jobs' progress. A session that may
// not read them (not in steep_repl_admin) gets a SnapshotProblem, not a failed poll.
func readSnapshots(ctx context.Context, conn *pgx.Conn, r *Reading) error {
	list, err := api.ListSnapshots(ctx, conn)
	if api.SQLState(err) == insufficientPrivilege {
		r.SnapshotProblem = "no permission to read its snapshots (grant steep_repl_admin)"
		return nil
	}
	if err != nil {
		return err
	}
	var jobs []int64
	for _, s := range list {
		if s.JobID != nil {
			jobs = append(jobs, *s.JobID)
		}
	}
	progress, err := api.ListSnapshotProgress(ctx, conn, jobs)
	if api.SQLState(err) == insufficientPrivilege {
		r.SnapshotProblem = "no permission to read its snapshots' progress (grant steep_repl_admin)"
		return nil
	}
	if err != nil {
		return err
	}
	r.SnapshotList = list
	r.SnapshotProgress = make(map[int64]api.SnapshotProgress, len(progress))
	for _, p := range progress {
		r.SnapshotProgress[p.JobID] = p
	}
	return nil
}

// insufficientPrivilege is SQLSTATE 42501.
const insufficientPrivilege = "42501"

func (e *endpoint) report(r Reading) {
	r.Key, r.Addr, r.Seed = e.key, e.addr, e.seed
	if r.At.IsZero() {
		r.At = time.Now()
	}
	e.m.report(e, r)
}

// reason is an error as the console shows it: one line, no password.
func (e *endpoint) reason(err error) string {
	if err == nil {
		return "connection lost"
	}
	s := strings.Join(strings.Fields(err.Error()), " ")
	s = connectPrefix.ReplaceAllString(s, "")
	return dbconn.Redact(s, "", e.cfg.Password)
}

// connectPrefix is pgconn's "failed to connect to `user=... database=...`: ", which repeats
// what the row already says.
var connectPrefix = regexp.MustCompile("failed to connect to `[^`]*`: ")

func localState(r Reading) string {
	for _, n := range r.Registry {
		if n.IsLocal {
			return n.InitState
		}
	}
	return ""
}

// sleep waits d, or less when woken; false when ctx ended.
func sleep(ctx context.Context, d time.Duration, wake <-chan struct{}) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-wake:
	case <-t.C:
	}
	return true
}
