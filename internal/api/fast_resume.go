package api

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
)

// The steps of resuming a fast init: the plan of block ranges, each marked when committed, and
// the process holding the slot's exported snapshot (steep-repl hold-snapshot).

// FastRange is one planned block range of a table: [From, To) blocks (To < 0: to the end),
// Of ranges for the table, Bytes its share of the heap.
type FastRange struct {
	Schema string `json:"schema_name"`
	Table  string `json:"table_name"`
	From   int64  `json:"from_block"`
	To     int64  `json:"to_block"`
	Of     int    `json:"of_chunks"`
	Bytes  int64  `json:"bytes"`
}

// FastPlan records the ranges of node's copy, replacing an earlier plan.
func FastPlan(ctx context.Context, db DB, node string, ranges []FastRange) error {
	b, err := json.Marshal(ranges)
	if err != nil {
		return fmt.Errorf("fast init of %s: encode the plan: %w", node, err)
	}
	return execStep(ctx, db, "fast init of "+node+": record the plan", qFastPlan, node, string(b))
}

// FastRangeDone marks a range copied, inside the transaction that copied it.
func FastRangeDone(ctx context.Context, db DB, node, schema, table string, from int64) error {
	return execStep(ctx, db, fmt.Sprintf("record range %s from block %d", Identifier(schema, table), from),
		qFastRangeDone, node, schema, table, from)
}

// FastPlanned reports whether node's copy has a recorded plan.
func FastPlanned(ctx context.Context, db DB, node string) (bool, error) {
	return scalar[bool](ctx, db, "fast init of "+node+": plan", qFastPlanned, node)
}

// FastPendingRanges lists the planned ranges of node's copy not committed yet, largest first.
func FastPendingRanges(ctx context.Context, db DB, node string) ([]FastRange, error) {
	rows, err := db.Query(ctx, q(qFastPendingRanges), node)
	if err != nil {
		return nil, fmt.Errorf("fast init of %s: pending ranges: %w", node, err)
	}
	out, err := pgx.CollectRows(rows, pgx.RowToStructByPos[FastRange])
	if err != nil {
		return nil, fmt.Errorf("fast init of %s: pending ranges: %w", node, err)
	}
	return out, nil
}

// SnapshotHolder is the process holding a fast init's exported snapshot.
type SnapshotHolder struct {
	PID                 int
	Slot, Snapshot, LSN string
}

// FastHolder returns node's snapshot holder; ok false when none is recorded.
func FastHolder(ctx context.Context, db DB, node string) (h SnapshotHolder, ok bool, err error) {
	err = db.QueryRow(ctx, q(qFastHolder), node).Scan(&h.PID, &h.Slot, &h.Snapshot, &h.LSN)
	if errors.Is(err, pgx.ErrNoRows) {
		return h, false, nil
	}
	if err != nil {
		return h, false, fmt.Errorf("fast init of %s: snapshot holder: %w", node, err)
	}
	return h, true, nil
}

// FastHolderRecord records h as node's snapshot holder.
func FastHolderRecord(ctx context.Context, db DB, node string, h SnapshotHolder) error {
	return execStep(ctx, db, "fast init of "+node+": record the snapshot holder", qFastHolderRecord,
		node, h.PID, h.Slot, h.Snapshot, h.LSN)
}

// FastHolderWanted reports whether holder pid should keep node's snapshot: the init still
// copies and made progress less than idle ago.
func FastHolderWanted(ctx context.Context, db DB, node string, pid int, idle time.Duration) (bool, error) {
	return scalar[bool](ctx, db, "fast init of "+node+": snapshot still wanted", qFastHolderWanted, node, pid, durationSetting(idle))
}

// FastHolderRelease forgets node's snapshot holder, which then lets the snapshot go.
func FastHolderRelease(ctx context.Context, db DB, node string) error {
	return execStep(ctx, db, "fast init of "+node+": release the snapshot", qFastHolderRelease, node)
}

// FastLoaded records that node's copy is in, from the slot's consistent LSN lsn, releases the
// snapshot's holder and starts the indexing step, in one transaction; it returns how many
// objects are to be re-created.
func FastLoaded(ctx context.Context, db DB, node, lsn string) (int, error) {
	return scalar[int](ctx, db, "fast init of "+node+": copy done", qFastLoaded, node, lsn)
}

// FastLoadedLSN is the LSN recorded by FastLoaded for node's copy; false: it is not in.
func FastLoadedLSN(ctx context.Context, db DB, node string) (string, bool, error) {
	var lsn string
	err := db.QueryRow(ctx, q(qFastLoadedLSN), node).Scan(&lsn)
	if errors.Is(err, pgx.ErrNoRows) {
		return "", false, nil
	}
	if err != nil {
		return "", false, fmt.Errorf("fast init of %s: loaded LSN: %w", node, err)
	}
	return lsn, true, nil
}
