package nodeinit

import (
	"context"
	"encoding/json"
	"fmt"

	"github.com/steepdb/steep_repl/internal/api"
)

// Deletes made while a merge runs. Pass 1 leaves both nodes holding the union of what its plan
// read; a row one node deletes after that is, at the write freeze, on the other node only, like
// a row written there since. judgeDeletes tells them apart by the version the other node still
// holds (steep_repl._merge_existed_before): a version older than that node's baseline (taken
// before the plan) or written by a pass of the merge was on both nodes, so the delete is
// propagated (category deleted_during_merge, resolution delete_local / delete_peer). Any other
// version is a user's write during the merge and is copied; when the row was on both nodes
// after pass 1 (a pass moved it) that write wins over the other node's delete (category
// update_delete), as a later write does in replication.

// Resolutions and categories of the rows judgeDeletes changes.
const (
	deleteLocal        = "delete_local" // delete the row here (the target): the source deleted it
	deletePeer         = "delete_peer"  // delete it on the source: the target deleted it
	deletedDuringMerge = "deleted_during_merge"
	updateDelete       = "update_delete"
)

// takeBaselines takes each node's baseline just before the plan: every transaction below it has
// ended, so every row version below it was read by the plan (waiting up to freeze_timeout for
// the transactions running now; an older baseline only copies more rows instead of deleting).
func (m *mergeRun) takeBaselines(ctx context.Context) (target, source string, err error) {
	wait := seconds(m.set.FreezeTimeout)
	if target, err = api.MergeBaseline(ctx, m.job.DB, wait); err != nil {
		return "", "", err
	}
	if source, err = api.MergeBaseline(ctx, m.src, wait); err != nil {
		return "", "", fmt.Errorf("on source node %s: %w", m.plan.Source, err)
	}
	return target, source, nil
}

// judgeRetried records this merge's job and baselines, and judges the plan's one-sided rows when
// an earlier attempt of the job already committed its pass 1 (the nodes held the union since;
// a row deleted on one of them meanwhile must not come back). The first attempt's plan is a
// plain union: nothing was on both nodes before it.
func (m *mergeRun) judgeRetried(ctx context.Context, rows []api.MergeRow, target, source string) ([]api.MergeRow, error) {
	if err := api.MergeRecordBaseline(ctx, m.job.DB, m.mergeID, m.job.ID, target, source); err != nil {
		return nil, err
	}
	bl, err := api.MergeBaselineOf(ctx, m.job.DB, m.mergeID)
	if err != nil || !bl.Active() {
		return rows, err
	}
	m.log.Info("an earlier attempt's pass 1 committed: rows deleted since are deleted on both nodes", "event", "init.merge_resumed_baseline")
	return m.judgeDeletes(ctx, m.job.DB, m.src, rows, bl)
}

// recordPass records the xids of the pass open on t and s, in t's transaction: they are
// recorded exactly when the pass commits on the target.
func (m *mergeRun) recordPass(ctx context.Context, t, s side) error {
	tx, err := api.CurrentXid(ctx, t.conn)
	if err != nil {
		return fmt.Errorf("on node %s: %w", t.node, err)
	}
	sx, err := api.CurrentXid(ctx, s.conn)
	if err != nil {
		return fmt.Errorf("on node %s: %w", s.node, err)
	}
	if err := api.MergeRecordPass(ctx, t.conn, m.mergeID, tx, sx); err != nil {
		return fmt.Errorf("on node %s: %w", t.node, err)
	}
	return nil
}

// judgeDeletes re-resolves the one-sided rows of a plan once a pass of the merge has committed
// (bl active): on the target (tdb) and the source (sdb) as they are now, the freeze's locked
// sessions or, for a retried attempt's pass 1, the plain ones. rows is changed in place.
func (m *mergeRun) judgeDeletes(ctx context.Context, tdb, sdb api.DB, rows []api.MergeRow, bl *api.MergeBaselines) ([]api.MergeRow, error) {
	if !bl.Active() {
		return rows, nil
	}
	for _, group := range byTable(rows) {
		if err := m.judgeTable(ctx, tdb, sdb, group, bl); err != nil {
			return nil, err
		}
	}
	return rows, nil
}

func (m *mergeRun) judgeTable(ctx context.Context, tdb, sdb api.DB, group []api.MergeRow, bl *api.MergeBaselines) error {
	tbl := api.TableName{Schema: group[0].Schema, Table: group[0].Table}
	for _, side := range []struct {
		category, node, baseline, resolution string
		db                                   api.DB
		xids                                 []string
	}{
		{"local_only", m.plan.Target, bl.Local, deleteLocal, tdb, bl.LocalXids},
		{"peer_only", m.plan.Source, bl.Peer, deletePeer, sdb, bl.PeerXids},
	} {
		idx := withCategory(group, side.category)
		for b := 0; b < len(idx); b += m.set.BatchRows {
			batch := idx[b:min(len(idx), b+m.set.BatchRows)]
			existed, err := api.MergeExistedBefore(ctx, side.db, tbl, keysOf(group, batch), side.baseline, side.xids)
			if err != nil {
				return fmt.Errorf("on node %s: %w", side.node, err)
			}
			existedSet := keySet(existed)
			var copied []int
			for _, i := range batch {
				if existedSet[string(group[i].Key)] {
					group[i].Category, group[i].Resolution, group[i].Tie = deletedDuringMerge, side.resolution, false
				} else {
					copied = append(copied, i)
				}
			}
			if len(copied) == 0 {
				continue
			}
			moved, err := api.MergeMovedKeys(ctx, tdb, m.mergeID, tbl, keysOf(group, copied))
			if err != nil {
				return fmt.Errorf("on node %s: %w", m.plan.Target, err)
			}
			movedSet := keySet(moved)
			for _, i := range copied {
				if movedSet[string(group[i].Key)] {
					group[i].Category = updateDelete
				}
			}
		}
	}
	return nil
}

// keySet is keys as a set: a freeze judges up to batch_rows keys at once, under its locks.
func keySet(keys []string) map[string]bool {
	out := make(map[string]bool, len(keys))
	for _, k := range keys {
		out[k] = true
	}
	return out
}

// withCategory is the positions in group of the rows of category.
func withCategory(group []api.MergeRow, category string) []int {
	var out []int
	for i, r := range group {
		if r.Category == category {
			out = append(out, i)
		}
	}
	return out
}

func keysOf(group []api.MergeRow, idx []int) []json.RawMessage {
	out := make([]json.RawMessage, len(idx))
	for j, i := range idx {
		out[j] = group[i].Key
	}
	return out
}

// deleteBatch deletes one batch of keys of table on the node that still has them (dir
// delete_local: the target, delete_peer: the source) and audits it with the deleted rows' images.
func (m *mergeRun) deleteBatch(ctx context.Context, t, s side, table api.TableName, dir string, batch []api.MergeRow, again bool) (deleted, skipped int64, err error) {
	keys := make([]json.RawMessage, len(batch))
	for i, r := range batch {
		keys[i] = r.Key
	}
	on := t
	if dir == deletePeer {
		on = s
	}
	old, err := api.MergeReadRows(ctx, on.conn, table, keys)
	if err != nil {
		return 0, 0, fmt.Errorf("on node %s: %w", on.node, err)
	}
	w, err := api.MergeDeleteRows(ctx, on.conn, table, expected(batch, dir == deleteLocal))
	if err != nil {
		return 0, 0, fmt.Errorf("on node %s: %w", on.node, err)
	}
	if batch, err = m.withoutSkipped(batch, table, dir, w.Skipped, again); err != nil {
		return 0, 0, err
	}
	local, peer := imagesByKey(batch, old), map[string]json.RawMessage(nil)
	if dir == deletePeer {
		local, peer = nil, local
	}
	record := api.MergeAudit
	if again {
		record = api.MergeAuditAgain
	}
	if _, err := record(ctx, t.conn, m.mergeID, auditRows(batch, local, peer, true)); err != nil {
		return 0, 0, fmt.Errorf("on node %s: %w", t.node, err)
	}
	return w.Deleted, int64(len(w.Skipped)), nil
}
