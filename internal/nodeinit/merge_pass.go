package nodeinit

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/steepdb/steep_repl/internal/api"
)

// A merge pass moves the rows of a plan in one open transaction on each node: to_local rows are
// read on the source and upserted here, to_peer rows the other way, table by table in foreign-key
// order, batch_rows keys at a time; the audit rows go in the target's transaction. Nothing of it
// is visible until both commit (commitBoth).

// side is one node's session with the pass's transaction open on it; sub is that node's
// subscription from the other, whose origin the merge's writes there carry.
type side struct {
	node, sub string
	origin    string // the origin set up by originAs
	conn      *pgx.Conn
}

func (s side) exec(ctx context.Context, sql string) error {
	if _, err := s.conn.Exec(ctx, sql); err != nil {
		return fmt.Errorf("on node %s: %s: %w", s.node, sql, err)
	}
	return nil
}

// begin opens the pass's transaction on s, its writes carrying the merge's replication origin.
func (s *side) begin(ctx context.Context) error {
	if err := s.exec(ctx, "BEGIN"); err != nil {
		return err
	}
	return s.originAs(ctx)
}

func (s *side) originAs(ctx context.Context) error {
	o, err := api.MergeOriginAs(ctx, s.conn, s.sub)
	if err != nil {
		return fmt.Errorf("on node %s: %w", s.node, err)
	}
	s.origin = o
	return nil
}

// abort rolls back whatever is open on s (also after a cancel) and resets its origin.
func (s side) abort() {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if s.conn.IsClosed() {
		return
	}
	_, _ = s.conn.Exec(ctx, "ROLLBACK")
	_ = api.MergeOriginEnd(ctx, s.conn)
}

// movedCount is what a pass moved, per direction, and deleted on each node.
// skipped: keys left because the node no longer held the version the plan read (a user's write).
type movedCount struct{ toLocal, toPeer, deletedLocal, deletedPeer, skipped int64 }

// pass1Attempts is how often pass 1 is tried when a deadlock with users' writes aborts it.
const pass1Attempts = 5

// passYield is pass 1's deadlock_timeout: shorter than users' (1 s by default), so in a
// deadlock between pass 1 and a user's transaction pass 1 is the one aborted, then run again.
const passYield = 100 * time.Millisecond

// pass1WithRetries runs pass 1 again after it gave way in a deadlock (or a serialization failure):
// both nodes were rolled back, and the guard of every write (the loser still holds the planned
// version) keeps what users wrote meanwhile.
func (m *mergeRun) pass1WithRetries(ctx context.Context, rows []api.MergeRow) (movedCount, error) {
	for attempt := 1; ; attempt++ {
		moved, err := m.pass1(ctx, rows)
		st := api.SQLState(err)
		if err == nil || attempt == pass1Attempts || ctx.Err() != nil || (st != "40P01" && st != "40001") {
			return moved, err
		}
		m.log.Warn("pass 1 gave way to a user's transaction; running it again", "event", "init.merge_pass_retry",
			"attempt", attempt, "error", err.Error())
	}
}

// pass1 moves rows (the plan made without a lock) and commits on both nodes.
func (m *mergeRun) pass1(ctx context.Context, rows []api.MergeRow) (movedCount, error) {
	tc, err := m.openTarget(ctx)
	if err != nil {
		return movedCount{}, err
	}
	defer tc.Close(context.Background())
	t, s := m.sides(tc, m.src)
	if err := t.begin(ctx); err != nil {
		return movedCount{}, err
	}
	defer t.abort()
	if err := s.begin(ctx); err != nil {
		return movedCount{}, err
	}
	defer s.abort()
	for _, x := range []side{t, s} {
		if err := api.MergeYieldDeadlocks(ctx, x.conn, passYield); err != nil {
			return movedCount{}, fmt.Errorf("on node %s: %w", x.node, err)
		}
	}
	moved, err := m.move(ctx, t, s, rows, false)
	if err != nil {
		return movedCount{}, err
	}
	if err := m.recordPass(ctx, t, s); err != nil {
		return movedCount{}, err
	}
	if err := m.commitBoth(t, s, "p1"); err != nil {
		return movedCount{}, err
	}
	return moved, nil
}

// sides are the target's session tc and the source's sc, each with its subscription's name.
func (m *mergeRun) sides(tc, sc *pgx.Conn) (t, s side) {
	return side{node: m.plan.Target, sub: m.plan.Subscription, conn: tc}, side{node: m.plan.Source, sub: m.mi.ReverseSubscription, conn: sc}
}

// move moves rows through the open transactions of t (the target) and s (the source): first the
// deletes, children before parents (a deleted row may hold a unique value an incoming one takes),
// then the upserts, parents first. Pass 1 reports each batch to init_progress; the freeze (again:
// its audit rows replace pass 1's for a row moved twice) does not stop for it.
func (m *mergeRun) move(ctx context.Context, t, s side, rows []api.MergeRow, again bool) (movedCount, error) {
	progress := !again
	var total movedCount
	groups := byTable(rows)
	done := map[api.TableName]int64{}
	report := func(tbl api.TableName, n int, dir string) error {
		if !progress {
			return nil
		}
		msg := fmt.Sprintf("merge: %s %d/%d rows (%s)", tbl, done[tbl], n, direction(dir, m.plan.Source))
		return api.MergeMoved(ctx, m.job.DB, m.plan.Target, tbl, done[tbl], false, msg)
	}
	for g := len(groups) - 1; g >= 0; g-- {
		group := groups[g]
		tbl := api.TableName{Schema: group[0].Schema, Table: group[0].Table}
		for _, dir := range []string{deleteLocal, deletePeer} {
			keys := withResolution(group, dir)
			for start := 0; start < len(keys); start += m.set.BatchRows {
				batch := keys[start:min(len(keys), start+m.set.BatchRows)]
				n, skipped, err := m.deleteBatch(ctx, t, s, tbl, dir, batch, again)
				if err != nil {
					return total, err
				}
				total.skipped += skipped
				done[tbl] += int64(len(batch))
				if dir == deleteLocal {
					total.deletedLocal += n
				} else {
					total.deletedPeer += n
				}
				if err := report(tbl, len(group), dir); err != nil {
					return total, err
				}
			}
		}
	}
	for _, group := range groups {
		tbl := api.TableName{Schema: group[0].Schema, Table: group[0].Table}
		for _, dir := range []string{"to_local", "to_peer"} {
			keys := withResolution(group, dir)
			for start := 0; start < len(keys); start += m.set.BatchRows {
				batch := keys[start:min(len(keys), start+m.set.BatchRows)]
				n, skipped, err := m.moveBatch(ctx, t, s, tbl, dir, batch, again)
				if err != nil {
					return total, err
				}
				total.skipped += skipped
				done[tbl] += int64(len(batch))
				if dir == "to_local" {
					total.toLocal += n
				} else {
					total.toPeer += n
				}
				if err := report(tbl, len(group), dir); err != nil {
					return total, err
				}
			}
		}
		if progress {
			if err := api.MergeMoved(ctx, m.job.DB, m.plan.Target, tbl, done[tbl], true, ""); err != nil {
				return total, err
			}
		}
	}
	return total, nil
}

func direction(dir, source string) string {
	switch dir {
	case "to_local":
		return "from " + source
	case deleteLocal:
		return "deleted here, as on " + source
	case deletePeer:
		return "deleted on " + source + ", as here"
	}
	return "to " + source
}

// moveBatch moves one batch of keys of table in direction dir and audits it: the winner's rows
// are read on its node, the loser's old images on the other, the winner's rows upserted there.
func (m *mergeRun) moveBatch(ctx context.Context, t, s side, table api.TableName, dir string, batch []api.MergeRow, again bool) (written, skipped int64, err error) {
	keys := make([]json.RawMessage, len(batch))
	for i, r := range batch {
		keys[i] = r.Key
	}
	from, to := s, t
	if dir == "to_peer" {
		from, to = t, s
	}
	winners, err := api.MergeReadRows(ctx, from.conn, table, keys)
	if err != nil {
		return 0, 0, fmt.Errorf("on node %s: %w", from.node, err)
	}
	old, err := api.MergeReadRows(ctx, to.conn, table, keys)
	if err != nil {
		return 0, 0, fmt.Errorf("on node %s: %w", to.node, err)
	}
	w, err := api.MergeApplyRows(ctx, to.conn, table, winners, expected(batch, dir == "to_local"))
	if err != nil {
		return 0, 0, fmt.Errorf("on node %s: %w", to.node, withDetail(err))
	}
	if batch, err = m.withoutSkipped(batch, table, dir, w.Skipped, again); err != nil {
		return 0, 0, err
	}
	local, peer := old, winners
	if dir == "to_peer" {
		local, peer = winners, old
	}
	audit := auditRows(batch, imagesByKey(batch, local), imagesByKey(batch, peer), true)
	record := api.MergeAudit
	if again {
		record = api.MergeAuditAgain
	}
	if _, err := record(ctx, t.conn, m.mergeID, audit); err != nil {
		return 0, 0, fmt.Errorf("on node %s: %w", t.node, err)
	}
	return w.Written, int64(len(w.Skipped)), nil
}

// expected is the version of each key of batch the plan read on the node a batch writes (the
// target if local, else the source): its row_hash, nil where absent. The write leaves a key
// whose row is another version by now: a user wrote it since, a later write (#13).
func expected(batch []api.MergeRow, local bool) map[string]*int64 {
	out := make(map[string]*int64, len(batch))
	for _, r := range batch {
		if local {
			out[string(r.Key)] = r.LocalHash
		} else {
			out[string(r.Key)] = r.PeerHash
		}
	}
	return out
}

// withoutSkipped is batch without the keys a write left as a user changed them, so they are
// not audited as moved: the write freeze re-checks them (its capture has the user's change),
// and a row changed on one node only goes to the other from there. Under the freeze (again) no
// user writes and the plan is fresh: a key left there would stay unmerged, so it fails the pass.
func (m *mergeRun) withoutSkipped(batch []api.MergeRow, table api.TableName, dir string, skipped []string, again bool) ([]api.MergeRow, error) {
	if len(skipped) == 0 {
		return batch, nil
	}
	if again {
		return nil, fmt.Errorf("table %s: %d row(s) (%s) changed under the write freeze's lock since its re-check, not written %s",
			table, len(skipped), skipped[0], direction(dir, m.plan.Source))
	}
	m.log.Info("rows a user changed since the plan left to the write freeze", "event", "init.merge_skipped_changed",
		"table", table.String(), "direction", dir, "keys", len(skipped))
	skip := keySet(skipped)
	out := make([]api.MergeRow, 0, len(batch))
	for _, r := range batch {
		if !skip[string(r.Key)] {
			out = append(out, r)
		}
	}
	return out, nil
}

// byTable splits rows (ordered by apply_order, table) into one group per table.
// byTable splits rows (ordered by table) into one group per table: views of rows, so a change
// to a group's row is a change to rows.
func byTable(rows []api.MergeRow) [][]api.MergeRow {
	var out [][]api.MergeRow
	start := 0
	for i := 1; i <= len(rows); i++ {
		if i == len(rows) || rows[i].Schema != rows[start].Schema || rows[i].Table != rows[start].Table {
			out = append(out, rows[start:i:i])
			start = i
		}
	}
	return out
}

func withResolution(rows []api.MergeRow, resolution string) []api.MergeRow {
	var out []api.MergeRow
	for _, r := range rows {
		if r.Resolution == resolution {
			out = append(out, r)
		}
	}
	return out
}

// canonicalKey is a key object as a comparable string: its columns sorted, each value as its
// text form (a plan's key holds JSON numbers, a row from _merge_rows the columns' text forms).
func canonicalKey(obj map[string]json.RawMessage, cols []string) string {
	sub := make(map[string]string, len(cols))
	for _, c := range cols {
		var s string
		if json.Unmarshal(obj[c], &s) != nil {
			s = string(obj[c]) // a number or boolean: its JSON text is its text form
		}
		sub[c] = s
	}
	b, _ := json.Marshal(sub) // map keys sorted
	return string(b)
}

// imagesByKey maps each row of rows (a JSON array of row objects) to the canonical key of the
// batch's key columns; a row image that cannot be read is left out (the audit row keeps NULL).
func imagesByKey(batch []api.MergeRow, rows json.RawMessage) map[string]json.RawMessage {
	if len(batch) == 0 {
		return nil
	}
	var key map[string]json.RawMessage
	if json.Unmarshal(batch[0].Key, &key) != nil {
		return nil
	}
	cols := make([]string, 0, len(key))
	for c := range key {
		cols = append(cols, c)
	}
	var list []json.RawMessage
	if json.Unmarshal(rows, &list) != nil {
		return nil
	}
	out := make(map[string]json.RawMessage, len(list))
	for _, raw := range list {
		var obj map[string]json.RawMessage
		if json.Unmarshal(raw, &obj) == nil {
			out[canonicalKey(obj, cols)] = raw
		}
	}
	return out
}

// auditRows are the merge_audit_log rows of batch, with both row images where a row changed
// (withImages: a real move; a dry run or manual rows record none).
func auditRows(batch []api.MergeRow, local, peer map[string]json.RawMessage, withImages bool) []map[string]any {
	out := make([]map[string]any, len(batch))
	for i, r := range batch {
		a := map[string]any{"schema_name": r.Schema, "table_name": r.Table, "key": r.Key, "category": r.Category,
			"resolution": r.Resolution, "tie": r.Tie, "local_hash": r.LocalHash, "peer_hash": r.PeerHash,
			"local_committed_at": r.LocalCommitted, "peer_committed_at": r.PeerCommitted}
		if withImages {
			var key map[string]json.RawMessage
			if json.Unmarshal(r.Key, &key) == nil {
				cols := make([]string, 0, len(key))
				for c := range key {
					cols = append(cols, c)
				}
				k := canonicalKey(key, cols)
				if img, ok := local[k]; ok {
					a["local_row"] = img
				}
				if img, ok := peer[k]; ok {
					a["peer_row"] = img
				}
			}
		}
		out[i] = a
	}
	return out
}

// withDetail adds the DETAIL and HINT of a PostgreSQL error to its text (the init's reason):
// _merge_apply lists its collisions there, the pre-flight what to fix.
func withDetail(err error) error {
	var pe *pgconn.PgError
	if !errors.As(err, &pe) || (pe.Detail == "" && pe.Hint == "") {
		return err
	}
	s := ""
	if pe.Detail != "" {
		s += "; DETAIL: " + pe.Detail
	}
	if pe.Hint != "" {
		s += "; HINT: " + pe.Hint
	}
	return fmt.Errorf("%w%s", err, s)
}
