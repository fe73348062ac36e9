package api

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
)

// InitOptions are start_init's options (zero values take the extension's defaults).
type InitOptions struct {
	Parallel      int      `json:"parallel,omitempty"`
	Tables        []string `json:"tables,omitempty"`
	Schemas       []string `json:"schemas,omitempty"`
	Force         bool     `json:"force,omitempty"`
	SchemaSync    string   `json:"schema_sync,omitempty"` // strict | auto | manual ("" = the configured default)
	Confirm       bool     `json:"confirm,omitempty"`     // with manual: go on despite differences
	LagThreshold  int64    `json:"lag_threshold,omitempty"`
	StallTimeout  float64  `json:"stall_timeout,omitempty"`
	SourceTimeout float64  `json:"source_timeout,omitempty"`
}

// StartInit calls steep_repl.start_init on the target node and returns the init.start job id.
func StartInit(ctx context.Context, db DB, target, source string, opts InitOptions) (int64, error) {
	b, err := json.Marshal(opts)
	if err != nil {
		return 0, fmt.Errorf("start init of %s: encode options: %w", target, err)
	}
	var id int64
	if err := db.QueryRow(ctx, q(qStartInit), target, source, "snapshot", string(b)).Scan(&id); err != nil {
		return 0, fmt.Errorf("start init of %s from %s: %w", target, source, err)
	}
	return id, nil
}

// CancelInit calls steep_repl.cancel_init; 0 means there was nothing to cancel.
func CancelInit(ctx context.Context, db DB, node string) (int64, error) {
	var id *int64
	if err := db.QueryRow(ctx, q(qCancelInit), node).Scan(&id); err != nil {
		return 0, fmt.Errorf("cancel init of %s: %w", node, err)
	}
	if id == nil {
		return 0, nil
	}
	return *id, nil
}

// InitProgress is a row of steep_repl.init_progress with the node's state.
type InitProgress struct {
	Node, Source, State, Phase string
	Percent                    float64
	TablesTotal, TablesDone    int
	CurrentTables, LargeTables []string
	BytesTotal, BytesDone      int64
	RowsTotal, RowsDone        int64
	RowsPerSec, BytesPerSec    *float64
	ETASeconds                 *float64
	ParallelWorkers            int
	LagBytes                   *int64
	StalledSince               *time.Time
	StartedAt, UpdatedAt       time.Time
	Message                    *string
}

// GetInitProgress returns the init progress of node, or nil when it has none.
func GetInitProgress(ctx context.Context, db DB, node string) (*InitProgress, error) {
	var p InitProgress
	err := db.QueryRow(ctx, q(qInitProgress), node).Scan(&p.Node, &p.Source, &p.State, &p.Phase, &p.Percent,
		&p.TablesTotal, &p.TablesDone, &p.CurrentTables, &p.LargeTables, &p.BytesTotal, &p.BytesDone, &p.RowsTotal,
		&p.RowsDone, &p.RowsPerSec, &p.BytesPerSec, &p.ETASeconds, &p.ParallelWorkers, &p.LagBytes, &p.StalledSince,
		&p.StartedAt, &p.UpdatedAt, &p.Message)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("init progress of %s: %w", node, err)
	}
	return &p, nil
}

// InitTable is a row of steep_repl.init_tables.
type InitTable struct {
	Schema, Table, SyncState string
	SourceBytes, SourceRows  int64
	RowsCopied, BytesCopied  int64
	Fraction                 float64
	IsLarge                  bool
	StartedAt, FinishedAt    *time.Time
	// ChunksTotal and ChunksDone count the block ranges a fast init copies the table in (0: another method).
	ChunksTotal, ChunksDone int
}

// StateText is the table's sync state, with the chunks copied of a table a fast init splits
// ("copying 3/8 chunks").
func (t InitTable) StateText() string {
	if t.ChunksTotal > 1 {
		return fmt.Sprintf("%s %d/%d chunks", t.SyncState, t.ChunksDone, t.ChunksTotal)
	}
	return t.SyncState
}

// ListInitTables returns the per-table progress of node's init.
func ListInitTables(ctx context.Context, db DB, node string) ([]InitTable, error) {
	rows, err := db.Query(ctx, q(qInitTables), node)
	if err != nil {
		return nil, fmt.Errorf("init tables of %s: %w", node, err)
	}
	out, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (InitTable, error) {
		var t InitTable
		err := row.Scan(&t.Schema, &t.Table, &t.SyncState, &t.SourceBytes, &t.SourceRows, &t.RowsCopied,
			&t.BytesCopied, &t.Fraction, &t.IsLarge, &t.StartedAt, &t.FinishedAt, &t.ChunksTotal, &t.ChunksDone)
		return t, err
	})
	if err != nil {
		return nil, fmt.Errorf("init tables of %s: %w", node, err)
	}
	return out, nil
}

// InitPlan is what the sidecar needs to run an init: the names of what it creates and the
// tables it publishes (it holds the source's conninfo: never log it).
type InitPlan struct {
	Target             string      `json:"target"`
	Source             string      `json:"source"`
	Phase              string      `json:"phase"`
	SourceConninfo     string      `json:"source_conninfo"`
	Publication        string      `json:"publication"`
	PublicationCreated bool        `json:"publication_created"`
	Subscription       string      `json:"subscription"`
	SlotName           string      `json:"slot_name"`
	SubscriptionOID    *uint32     `json:"subscription_oid"`
	Parallel           int         `json:"parallel"`
	Tables             []TableName `json:"tables"`
	// SourceTimeout is how long, in seconds, the source may stay unreachable before the init
	// fails (start_init's source_timeout; 0 from an extension that does not say).
	SourceTimeout float64 `json:"source_timeout"`
	// Reinit is set while a reinit (start_reinit) is under way; Tables are then its tables.
	Reinit *ReinitState `json:"reinit"`
}

// GetInitPlan returns the plan of node's init, or nil when it has none.
func GetInitPlan(ctx context.Context, db DB, node string) (*InitPlan, error) {
	var raw []byte
	if err := db.QueryRow(ctx, q(qInitPlan), node).Scan(&raw); err != nil {
		return nil, fmt.Errorf("init plan of %s: %w", node, err)
	}
	if raw == nil {
		return nil, nil
	}
	var p InitPlan
	if err := json.Unmarshal(raw, &p); err != nil {
		return nil, fmt.Errorf("init plan of %s: decode: %w", node, err)
	}
	return &p, nil
}

// InitSubscribed records that the subscription exists (PREPARING -> COPYING).
func InitSubscribed(ctx context.Context, db DB, node string, publicationCreated bool, parallel int) error {
	if _, err := db.Exec(ctx, q(qInitSubscribed), node, publicationCreated, parallel); err != nil {
		return fmt.Errorf("record subscription of %s: %w", node, err)
	}
	return nil
}

// InitFailed moves node's init to FAILED with reason.
func InitFailed(ctx context.Context, db DB, node, reason string) error {
	if _, err := db.Exec(ctx, q(qInitFailed), node, reason); err != nil {
		return fmt.Errorf("record failure of init of %s: %w", node, err)
	}
	return nil
}

// InitCancelled truncates the init's tables, clears its progress and makes node UNINITIALIZED.
func InitCancelled(ctx context.Context, db DB, node string, detail map[string]any) error {
	d, err := jsonArg(detail)
	if err != nil {
		return err
	}
	if _, err := db.Exec(ctx, q(qInitCancelled), node, d); err != nil {
		return fmt.Errorf("record cancel of init of %s: %w", node, err)
	}
	return nil
}

// InitExported records a slot created with an exported snapshot (manual init, logical path).
func InitExported(ctx context.Context, db DB, node, slot, publication, lsn, snapshot string, expires time.Duration, job int64) error {
	if _, err := db.Exec(ctx, q(qInitExported), node, slot, publication, lsn, snapshot, intervalArg(expires), job); err != nil {
		return fmt.Errorf("record exported slot %s: %w", slot, err)
	}
	return nil
}

// InitSnapshotReleased records that a slot's exported snapshot is no longer held.
func InitSnapshotReleased(ctx context.Context, db DB, slot string) error {
	if _, err := db.Exec(ctx, q(qInitSnapshotReleased), slot); err != nil {
		return fmt.Errorf("record release of slot %s: %w", slot, err)
	}
	return nil
}

// PreparedSlot is what prepare_init returns.
type PreparedSlot struct {
	Slot, LSN, Publication, NextSteps string
	ExpiresAt                         time.Time
}

// PrepareInit calls steep_repl.prepare_init on the source.
func PrepareInit(ctx context.Context, db DB, node, slot string, expires time.Duration) (PreparedSlot, error) {
	var p PreparedSlot
	var s *string
	if slot != "" {
		s = &slot
	}
	err := db.QueryRow(ctx, q(qPrepareInit), node, s, intervalArg(expires)).Scan(&p.Slot, &p.LSN, &p.Publication, &p.ExpiresAt, &p.NextSteps)
	if err != nil {
		return p, fmt.Errorf("prepare init of %s: %w", node, err)
	}
	return p, nil
}

// PrepareInitExport calls steep_repl.prepare_init_export and returns the init.export job id.
func PrepareInitExport(ctx context.Context, db DB, node, slot string, expires, hold time.Duration) (int64, error) {
	var s *string
	if slot != "" {
		s = &slot
	}
	var id int64
	if err := db.QueryRow(ctx, q(qPrepareInitExport), node, s, intervalArg(expires), intervalArg(hold)).Scan(&id); err != nil {
		return 0, fmt.Errorf("prepare init export of %s: %w", node, err)
	}
	return id, nil
}

// ExportedSnapshot returns the slot's LSN and held snapshot name ("" while not yet created or released).
func ExportedSnapshot(ctx context.Context, db DB, slot string) (lsn, snapshot string, err error) {
	var l, s *string
	err = db.QueryRow(ctx, q(qExportedSnapshot), slot).Scan(&l, &s)
	if errors.Is(err, pgx.ErrNoRows) {
		return "", "", nil
	}
	if err != nil {
		return "", "", fmt.Errorf("exported snapshot of %s: %w", slot, err)
	}
	return deref(l), deref(s), nil
}

// ReleaseInitSnapshot ends the hold of a slot's exported snapshot.
func ReleaseInitSnapshot(ctx context.Context, db DB, slot string) (bool, error) {
	var ok bool
	if err := db.QueryRow(ctx, q(qReleaseInitSnapshot), slot).Scan(&ok); err != nil {
		return false, fmt.Errorf("release snapshot of %s: %w", slot, err)
	}
	return ok, nil
}

// CompleteInit calls steep_repl.complete_init on the seeded target; lsn "" reads it from the timeline history.
func CompleteInit(ctx context.Context, db DB, target, source, slot, lsn string, options map[string]any) (map[string]any, error) {
	var l *string
	if lsn != "" {
		l = &lsn
	}
	if options == nil {
		options = map[string]any{}
	}
	o, err := jsonArg(options)
	if err != nil {
		return nil, err
	}
	var out map[string]any
	if err := db.QueryRow(ctx, q(qCompleteInit), target, source, slot, l, o).Scan(&out); err != nil {
		return nil, fmt.Errorf("complete init of %s from %s: %w", target, source, err)
	}
	return out, nil
}

func deref(s *string) string {
	if s == nil {
		return ""
	}
	return *s
}
