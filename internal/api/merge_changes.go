package api

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
)

// The write freeze's change capture (internal/nodeinit/merge_changes.go): a logical slot of the
// merge's own on each node, read as pgoutput messages, and the plan of what changed only.

// TxBeginner is a session or pool a transaction can be opened on.
type TxBeginner interface {
	Begin(ctx context.Context) (pgx.Tx, error)
}

// MergeDrainChanges reads (and consumes) every change decoded by slot since its last read, as
// pgoutput (protocol 1) messages of publication without the changes that carry an origin (the
// merge's own writes), handing each message to each. Key values are printed under the settings
// the merge's plan parses them with. WAL written before the call is flushed first, so a commit
// made with synchronous_commit = off before it is read too. A failure part way leaves the slot
// advanced past what each saw: the caller must not trust the capture after an error. timeout
// bounds the read (the first one decodes all the WAL written during pass 1).
func MergeDrainChanges(ctx context.Context, db TxBeginner, slot, publication string, timeout time.Duration, each func([]byte) error) error {
	what := "read the changes of slot " + slot
	tx, err := db.Begin(ctx)
	if err != nil {
		return fmt.Errorf("%s: %w", what, err)
	}
	defer func() { _ = tx.Rollback(context.Background()) }()
	if _, err := tx.Exec(ctx, q(qMergeDrainSettings), durationSetting(timeout)); err != nil {
		return fmt.Errorf("%s: %w", what, err)
	}
	if _, err := tx.Exec(ctx, q(qMergeFlushWal)); err != nil {
		return fmt.Errorf("%s: flush the WAL: %w", what, err)
	}
	rows, err := tx.Query(ctx, q(qMergeDrainChanges), slot, publication)
	if err != nil {
		return fmt.Errorf("%s: %w", what, err)
	}
	defer rows.Close()
	for rows.Next() {
		var data []byte
		if err := rows.Scan(&data); err != nil {
			return fmt.Errorf("%s: %w", what, err)
		}
		if err := each(data); err != nil {
			return fmt.Errorf("%s: %w", what, err)
		}
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("%s: %w", what, err)
	}
	rows.Close()
	return tx.Commit(ctx)
}

// PlanMergeKeysAs is the write freeze's re-check (steep_repl._merge_plan_keys): the plan of the
// tables in keys only, each of its keys only (key objects of text values) or whole (nil).
func PlanMergeKeysAs(ctx context.Context, db DB, peer string, options json.RawMessage, asRole string, keys map[string][]json.RawMessage) ([]MergeRow, error) {
	what := "merge re-check with " + peer
	k, err := json.Marshal(keys)
	if err != nil {
		return nil, fmt.Errorf("%s: encode keys: %w", what, err)
	}
	rows, err := db.Query(ctx, q(qMergePlanKeysAs), peer, string(options), asRole, string(k))
	if err != nil {
		return nil, fmt.Errorf("%s: %w", what, err)
	}
	return collectMergeRows(rows, what)
}

// MergeTableRows is the planner's estimate of each table's rows ("schema.table" -> reltuples;
// -1 for a table never vacuumed or analyzed).
func MergeTableRows(ctx context.Context, db DB, tables []TableName) (map[string]int64, error) {
	b, err := json.Marshal(tables)
	if err != nil {
		return nil, err
	}
	rows, err := db.Query(ctx, q(qMergeTableRows), string(b))
	if err != nil {
		return nil, fmt.Errorf("estimate the rows of the tables in scope: %w", err)
	}
	out := map[string]int64{}
	var name string
	var n int64
	_, err = pgx.ForEachRow(rows, []any{&name, &n}, func() error {
		out[name] = n
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("estimate the rows of the tables in scope: %w", err)
	}
	return out, nil
}
