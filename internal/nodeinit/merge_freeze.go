package nodeinit

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/steepdb/steep_repl/internal/api"
)

// The write freeze: the changes captured since the first plan are read (merge_changes.go), then a
// session on each node BEGINs and LOCKs every table in scope IN EXCLUSIVE MODE (reads go on,
// writes wait). Holding both locks, and with no xid yet in those sessions, a logical slot is
// created on each node for the other from another session: it starts after every user write
// merged so far, and every user write after the release comes after it. The changes committed
// before the lock are read (the lock ends them); then, in the locked sessions, the rows of the
// keys that changed since the first plan are planned again (a table whose keys the capture could
// not name, whole), what changed is moved under the origin of the node's own subscription from the other
// (which the other's subscription, origin = none, does not send back), and both commit. The freeze lasts from the second lock to the commit.
// A row one node deleted since pass 1 is deleted on the other too, not copied back (merge_delete.go).
//
// A slot's creation waits for every transaction that has an xid: a writer that wrote elsewhere
// first and now waits on the lock would hold it forever. So each step is bounded by
// freeze_timeout; a freeze that times out rolls back, drops its slots and is tried again.

// freezeAttempts is how many times a freeze that timed out is tried before the merge fails.
const freezeAttempts = 3

// freezeResult is what a freeze made: the slots' consistent points, its duration, what it moved.
type freezeResult struct {
	sourceLSN string // the slot on the source the target subscribes from
	targetLSN string // the slot on the target the source subscribes from
	ms        float64
	moved     movedCount
	attempts  int
	re        recheckStats
}

// recheckStats is what the freeze's re-check read: each node's changed keys (keys_changed),
// the keys re-read on both nodes (rows_rechecked), the tables re-planned whole and why, and how
// long reading the captured changes took under the lock (drain_ms).
type recheckStats struct {
	keysChanged, rowsRechecked int
	whole                      map[string]string
	drainMS                    int64
}

func (m *mergeRun) freezeWithRetries(ctx context.Context) (freezeResult, error) {
	for attempt := 1; ; attempt++ {
		_ = api.MergeMessage(ctx, m.job.DB, m.plan.Target, fmt.Sprintf("merge: write freeze (attempt %d of %d)", attempt, freezeAttempts))
		fr, err := m.freezeOnce(ctx)
		if err == nil {
			fr.attempts = attempt
			m.log.Info("write freeze done", "event", "init.merge_freeze", "freeze_ms", fr.ms, "to_local", fr.moved.toLocal,
				"to_peer", fr.moved.toPeer, "deleted_local", fr.moved.deletedLocal, "deleted_peer", fr.moved.deletedPeer, "attempt", attempt,
				"keys_changed", fr.re.keysChanged, "rows_rechecked", fr.re.rowsRechecked, "tables_whole", fr.re.whole, "drain_ms", fr.re.drainMS)
			detail := map[string]any{"merge_id": m.mergeID, "freeze_ms": fr.ms, "to_local": fr.moved.toLocal, "to_peer": fr.moved.toPeer,
				"deleted_local": fr.moved.deletedLocal, "deleted_peer": fr.moved.deletedPeer,
				"attempt": attempt, "source_slot_lsn": fr.sourceLSN, "target_slot_lsn": fr.targetLSN,
				"keys_changed": fr.re.keysChanged, "rows_rechecked": fr.re.rowsRechecked, "tables_whole": fr.re.whole, "drain_ms": fr.re.drainMS}
			if err := api.RecordEvent(ctx, m.job.DB, m.plan.Target, "init.merge_freeze", detail); err != nil {
				return fr, err
			}
			return fr, nil
		}
		if ctx.Err() != nil || !freezeTimedOut(err) {
			return freezeResult{}, err
		}
		if attempt == freezeAttempts {
			return freezeResult{}, fmt.Errorf("the write freeze timed out %d times (freeze_timeout %gs): a transaction on a table in scope kept a lock or an xid open; last error: %w",
				freezeAttempts, m.set.FreezeTimeout, err)
		}
		m.log.Warn("write freeze timed out; trying again", "event", "init.merge_freeze_retry", "attempt", attempt, "error", err.Error())
		if rerr := api.RecordEvent(ctx, m.job.DB, m.plan.Target, "init.merge_freeze_retry",
			map[string]any{"merge_id": m.mergeID, "attempt": attempt, "error": err.Error()}); rerr != nil {
			return freezeResult{}, rerr
		}
	}
}

// freezeTimedOut: the lock (55P03) or a slot's creation (57014, statement_timeout) took longer
// than freeze_timeout.
func freezeTimedOut(err error) bool {
	st := api.SQLState(err)
	return st == "55P03" || st == "57014"
}

func (m *mergeRun) freezeOnce(ctx context.Context) (fr freezeResult, err error) {
	// Most of what changed since the first plan is read before the lock (an error leaves the
	// capture broken: every table is then re-planned whole).
	if _, err := m.drain(ctx); err != nil && ctx.Err() != nil {
		return fr, err
	}
	if m.capture != nil && m.capture.rows == nil {
		if m.capture.rows, err = api.MergeTableRows(ctx, m.job.DB, m.tables); err != nil {
			return fr, err
		}
	}
	tc, err := m.openTarget(ctx)
	if err != nil {
		return fr, err
	}
	defer tc.Close(context.Background())
	sc, err := connectSource(ctx, m.plan.Source, m.plan.SourceConninfo)
	if err != nil {
		return fr, err
	}
	defer sc.Close(context.Background())
	t, s := m.sides(tc, sc)
	bound := seconds(m.set.FreezeTimeout)
	for _, x := range []side{t, s} {
		if err := x.exec(ctx, "BEGIN"); err != nil {
			return fr, err
		}
		defer x.abort()
		if err := api.MergeLocalTimeouts(ctx, x.conn, bound, seconds(m.set.StatementTimeout)); err != nil {
			return fr, fmt.Errorf("on node %s: %w", x.node, err)
		}
		if err := api.MergeLock(ctx, x.conn, m.tables); err != nil {
			return fr, fmt.Errorf("on node %s: %w", x.node, err)
		}
	}
	locked := time.Now()
	if fr.sourceLSN, fr.targetLSN, err = m.createSlots(ctx, bound); err != nil {
		return fr, err
	}
	slotsMade := time.Since(locked)
	defer func() {
		if err != nil {
			m.dropFreezeSlots()
		}
	}()
	for _, x := range []*side{&t, &s} {
		if err := x.originAs(ctx); err != nil {
			return fr, err
		}
	}
	d, err := m.drain(ctx)
	if err != nil && ctx.Err() != nil {
		return fr, err
	}
	planned := time.Now()
	rows, re, err := m.recheck(ctx, tc)
	if err != nil {
		return fr, withDetail(err)
	}
	re.drainMS = d.Milliseconds()
	fr.re = re
	recheckMS := time.Since(planned).Milliseconds()
	// A row on one node only now: written there since pass 1, or deleted on the other (judged
	// under the lock, so no delete can come after the judgement).
	judged := time.Now()
	bl, err := api.MergeBaselineOf(ctx, tc, m.mergeID)
	if err != nil {
		return fr, err
	}
	if rows, err = m.judgeDeletes(ctx, tc, sc, rows, bl); err != nil {
		return fr, err
	}
	judgeMS := time.Since(judged).Milliseconds()
	if rows, err = m.oneSided(ctx, t, s, rows); err != nil {
		return fr, err
	}
	if err := m.stopOnManual(ctx, rows, "the re-check under the write freeze"); err != nil {
		return fr, err
	}
	moving := time.Now()
	if fr.moved, err = m.move(ctx, t, s, rows, true); err != nil {
		return fr, err
	}
	moveMS := time.Since(moving).Milliseconds()
	// The freeze's xids too: a retried attempt (a failure after this commit) must not copy back
	// a row the freeze wrote and a user deleted since.
	if err := m.recordPass(ctx, t, s); err != nil {
		return fr, err
	}
	committing := time.Now()
	if err := m.commitBoth(t, s, "freeze"); err != nil {
		return fr, err
	}
	commitMS := time.Since(committing).Milliseconds()
	fr.ms = float64(time.Since(locked).Microseconds()) / 1000
	m.log.Info("write freeze released", "event", "init.merge_unfrozen", "freeze_ms", fr.ms,
		"slots_ms", slotsMade.Milliseconds(), "drain_ms", re.drainMS, "recheck_ms", recheckMS, "judge_deletes_ms", judgeMS,
		"move_ms", moveMS, "commit_ms", commitMS,
		"keys_changed", re.keysChanged, "rows_rechecked", re.rowsRechecked, "rows_differing", len(rows))
	return fr, nil
}

// recheck plans again, in the locked session tc, the keys the capture found changed on either
// node since the first plan (the tables it could not name keys of, whole); without a capture
// to trust, every table whole.
func (m *mergeRun) recheck(ctx context.Context, tc *pgx.Conn) ([]api.MergeRow, recheckStats, error) {
	if m.capture == nil || m.capture.broken != "" {
		m.log.Warn("no change capture to trust: the write freeze re-plans every table whole", "event", "init.merge_recheck_whole")
		rows, err := api.PlanMergeAs(ctx, tc, m.plan.Source, m.mi.Options, m.mi.AsRole)
		return rows, recheckStats{whole: map[string]string{"*": "no change capture"}}, err
	}
	set := recheck(m.capture.rows, m.capture.target, m.capture.source)
	st := recheckStats{keysChanged: set.changed, rowsRechecked: set.rechecked, whole: set.whole}
	for t, why := range set.whole {
		m.log.Info("the write freeze re-plans a table whole", "event", "init.merge_recheck_whole", "table", t, "reason", why)
	}
	// Called with no keys too: it checks the tables' definitions again.
	rows, err := api.PlanMergeKeysAs(ctx, tc, m.plan.Source, m.mi.Options, m.mi.AsRole, set.keys)
	return rows, st, err
}

// createSlots creates, at once and each bounded by bound, the slot on the source (the target
// subscribes from it) over the merge's source session and the reverse slot on the target over
// the job's pool; if either fails, the other is dropped.
func (m *mergeRun) createSlots(ctx context.Context, bound time.Duration) (sourceLSN, targetLSN string, err error) {
	var wg sync.WaitGroup
	var serr, terr error
	wg.Add(2)
	go func() {
		defer wg.Done()
		sourceLSN, serr = createSlotBounded(ctx, m.src, m.plan.SlotName, bound)
	}()
	go func() {
		defer wg.Done()
		targetLSN, terr = createSlotBounded(ctx, m.job.DB, m.mi.ReverseSlot, bound)
	}()
	wg.Wait()
	if serr == nil && terr == nil {
		return sourceLSN, targetLSN, nil
	}
	m.dropFreezeSlots()
	if serr != nil {
		return "", "", fmt.Errorf("on source node %s: %w", m.plan.Source, serr)
	}
	return "", "", fmt.Errorf("on node %s: %w", m.plan.Target, terr)
}

// dropFreezeSlots drops the freeze's slots on both nodes, where they exist.
func (m *mergeRun) dropFreezeSlots() {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for _, x := range []struct {
		db   api.DB
		slot string
	}{{m.src, m.plan.SlotName}, {m.job.DB, m.mi.ReverseSlot}} {
		if err := api.DropSlot(ctx, x.db, x.slot); err != nil && api.SQLState(err) != "42704" {
			m.log.Warn("could not drop a slot of the freeze", "event", "init.merge_slot_left", "slot", x.slot, "error", err.Error())
		}
	}
}

// createSlotBounded creates logical slot on db in a transaction whose statement_timeout is
// bound (a slot creation cannot be interrupted otherwise without closing the session).
func createSlotBounded(ctx context.Context, db api.TxBeginner, slot string, bound time.Duration) (string, error) {
	tx, err := db.Begin(ctx)
	if err != nil {
		return "", err
	}
	defer func() { _ = tx.Rollback(context.Background()) }()
	if err := api.MergeLocalTimeouts(ctx, tx, bound, bound); err != nil {
		return "", err
	}
	lsn, err := api.CreateLogicalSlot(ctx, tx, slot)
	if err != nil {
		return "", err
	}
	return lsn, tx.Commit(ctx)
}

// oneSided resolves the re-check's conflicting rows that a user changed since the merge began on
// one node only in favour of that node, whatever the strategy: the other node holds the row as
// it was, or the copy pass 1 wrote (a write of the merge's origin). A row changed on both nodes
// keeps the strategy's resolution; so do all, where a node does not track commit timestamps.
func (m *mergeRun) oneSided(ctx context.Context, t, s side, rows []api.MergeRow) ([]api.MergeRow, error) {
	var keys []json.RawMessage
	var tbl api.TableName
	flush := func(end int) error {
		if len(keys) == 0 {
			return nil
		}
		here, okT, err := api.MergeChangedSince(ctx, t.conn, tbl, keys, m.since.target, t.origin)
		if err != nil {
			return fmt.Errorf("on node %s: %w", t.node, err)
		}
		there, okS, err := api.MergeChangedSince(ctx, s.conn, tbl, keys, m.since.source, s.origin)
		if err != nil {
			return fmt.Errorf("on node %s: %w", s.node, err)
		}
		keys = nil
		if !okT || !okS {
			return nil
		}
		for i := end - 1; i >= 0 && rows[i].Schema == tbl.Schema && rows[i].Table == tbl.Table; i-- {
			r := &rows[i]
			if r.Category != "conflicting" {
				continue
			}
			l, p := slices.Contains(here, string(r.Key)), slices.Contains(there, string(r.Key))
			switch {
			case l && !p:
				r.Resolution, r.Tie = "to_peer", false
			case p && !l:
				r.Resolution, r.Tie = "to_local", false
			}
		}
		return nil
	}
	for i, r := range rows {
		if k := (api.TableName{Schema: r.Schema, Table: r.Table}); k != tbl {
			if err := flush(i); err != nil {
				return nil, err
			}
			tbl = k
		}
		if r.Category == "conflicting" {
			keys = append(keys, r.Key)
		}
	}
	return rows, flush(len(rows))
}
