package api

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
)

// SnapshotOptions are generate_snapshot's options (zero values take the extension's defaults).
type SnapshotOptions struct {
	Compression string   `json:"compression,omitempty"`
	Parallel    int      `json:"parallel,omitempty"`
	Tables      []string `json:"tables,omitempty"`
	Schemas     []string `json:"schemas,omitempty"`
	// SlotExpiry is how many seconds the snapshot's slot is kept for subscribers.
	SlotExpiry int64 `json:"slot_expiry,omitempty"`
	// Subscribable false generates without a publication or a kept slot.
	Subscribable *bool `json:"subscribable,omitempty"`
	// MaxRate caps each worker's COPY stream in bytes per second (0: no cap).
	MaxRate int64 `json:"max_rate,omitempty"`
}

// ApplyOptions are apply_snapshot's options.
type ApplyOptions struct {
	Parallel       int   `json:"parallel,omitempty"`
	Subscribe      bool  `json:"subscribe,omitempty"`
	ErrorTolerance int64 `json:"error_tolerance,omitempty"`
	Truncate       bool  `json:"truncate,omitempty"`
	MaxRate        int64 `json:"max_rate,omitempty"`
}

// GenerateSnapshot calls steep_repl.generate_snapshot and returns the new snapshot's id.
func GenerateSnapshot(ctx context.Context, db DB, path string, opts SnapshotOptions) (string, error) {
	b, err := json.Marshal(opts)
	if err != nil {
		return "", fmt.Errorf("generate snapshot into %s: encode options: %w", path, err)
	}
	var id string
	if err := db.QueryRow(ctx, q(qGenerateSnapshot), path, string(b)).Scan(&id); err != nil {
		return "", fmt.Errorf("generate snapshot into %s: %w", path, err)
	}
	return id, nil
}

// ApplySnapshot calls steep_repl.apply_snapshot and returns the snapshot.apply job id.
func ApplySnapshot(ctx context.Context, db DB, path string, opts ApplyOptions) (int64, error) {
	b, err := json.Marshal(opts)
	if err != nil {
		return 0, fmt.Errorf("apply snapshot %s: encode options: %w", path, err)
	}
	var id int64
	if err := db.QueryRow(ctx, q(qApplySnapshot), path, string(b)).Scan(&id); err != nil {
		return 0, fmt.Errorf("apply snapshot %s: %w", path, err)
	}
	return id, nil
}

// DeleteSnapshot calls steep_repl.delete_snapshot and returns the snapshot.delete job id.
func DeleteSnapshot(ctx context.Context, db DB, id string) (int64, error) {
	var job int64
	if err := db.QueryRow(ctx, q(qDeleteSnapshot), id).Scan(&job); err != nil {
		return 0, fmt.Errorf("delete snapshot %s: %w", id, err)
	}
	return job, nil
}

// SnapshotInfo is a row of steep_repl.list_snapshots().
type SnapshotInfo struct {
	ID              *string    `json:"id"`
	Role            string     `json:"role"`
	State           string     `json:"state"`
	Path            string     `json:"path"`
	SourceNode      *string    `json:"source_node"`
	LSN             *string    `json:"lsn"`
	SlotName        *string    `json:"slot_name"`
	SlotExpiresAt   *time.Time `json:"slot_expires_at"`
	SlotDropped     *bool      `json:"slot_dropped"`
	Compression     *string    `json:"compression"`
	Tables          *int       `json:"tables"`
	Rows            *int64     `json:"rows"`
	BytesRaw        *int64     `json:"bytes_raw"`
	BytesCompressed *int64     `json:"bytes_compressed"`
	TuplesSkipped   *int64     `json:"tuples_skipped"`
	JobID           *int64     `json:"job_id"`
	CreatedAt       time.Time  `json:"created_at"`
	CompletedAt     *time.Time `json:"completed_at"`
	Error           *string    `json:"error"`
}

// ListSnapshots returns the snapshots generated on and applied to the node, newest first.
func ListSnapshots(ctx context.Context, db DB) ([]SnapshotInfo, error) {
	var out []SnapshotInfo
	if err := queryJSON(ctx, db, &out, qListSnapshots); err != nil {
		return nil, fmt.Errorf("list snapshots: %w", err)
	}
	return out, nil
}

// SnapshotProgress is a row of steep_repl.snapshot_progress.
type SnapshotProgress struct {
	JobID             int64     `json:"job_id"`
	SnapshotID        *string   `json:"snapshot_id"`
	Phase             string    `json:"phase"`
	Step              string    `json:"step"`
	Percent           float64   `json:"percent"`
	BytesDone         int64     `json:"bytes_done"`
	BytesTotal        int64     `json:"bytes_total"`
	RowsDone          int64     `json:"rows_done"`
	RowsTotal         int64     `json:"rows_total"`
	TablesDone        int       `json:"tables_done"`
	TablesTotal       int       `json:"tables_total"`
	ThroughputBytesS  *float64  `json:"throughput_bytes_s"`
	ETASeconds        *float64  `json:"eta_seconds"`
	CurrentTable      *string   `json:"current_table"`
	CompressionRatio  *float64  `json:"compression_ratio"`
	ChecksumsVerified int       `json:"checksums_verified"`
	ChecksumsFailed   int       `json:"checksums_failed"`
	TuplesSkipped     int64     `json:"tuples_skipped"`
	Message           *string   `json:"message"`
	StartedAt         time.Time `json:"started_at"`
	UpdatedAt         time.Time `json:"updated_at"`
}

// GetSnapshotProgress returns the progress of a snapshot job, or nil when it has none yet.
func GetSnapshotProgress(ctx context.Context, db DB, jobID int64) (*SnapshotProgress, error) {
	var p *SnapshotProgress
	if err := queryJSON(ctx, db, &p, qSnapshotProgress, jobID); err != nil {
		return nil, fmt.Errorf("progress of snapshot job %d: %w", jobID, err)
	}
	return p, nil
}

// SetSnapshotProgress writes a job's progress row (NOTIFY steep_repl_progress) with
// steep_repl._snapshot_progress_set: the extension computes ThroughputBytesS and ETASeconds
// from the counts (those of p are ignored). Percent never decreases within a phase unless
// restart is true.
func SetSnapshotProgress(ctx context.Context, db DB, p SnapshotProgress, restart bool) error {
	b, err := json.Marshal(p)
	if err != nil {
		return fmt.Errorf("encode snapshot progress: %w", err)
	}
	if _, err := db.Exec(ctx, q(qSetSnapshotProgress), p.JobID, string(b), restart); err != nil {
		return fmt.Errorf("record progress of snapshot job %d: %w", p.JobID, err)
	}
	return nil
}

// SnapshotJobOf returns the generate job of a snapshot.
func SnapshotJobOf(ctx context.Context, db DB, id string) (int64, error) {
	var job *int64
	if err := db.QueryRow(ctx, q(qSnapshotJobOf), id).Scan(&job); err != nil {
		return 0, fmt.Errorf("job of snapshot %s: %w", id, err)
	}
	if job == nil {
		return 0, fmt.Errorf("snapshot %s has no job", id)
	}
	return *job, nil
}

// FindSnapshotByPath returns the newest live snapshot generated into path, "" when none.
func FindSnapshotByPath(ctx context.Context, db DB, path string) (string, error) {
	var id string
	err := db.QueryRow(ctx, q(qFindSnapshotByPath), path).Scan(&id)
	if errors.Is(err, pgx.ErrNoRows) {
		return "", nil
	}
	if err != nil {
		return "", fmt.Errorf("find snapshot in %s: %w", path, err)
	}
	return id, nil
}

// queryJSON scans the single jsonb value of a named query into dst (left alone on NULL or no row).
func queryJSON(ctx context.Context, db DB, dst any, id query, args ...any) error {
	var raw []byte
	err := db.QueryRow(ctx, q(id), args...).Scan(&raw)
	if errors.Is(err, pgx.ErrNoRows) || (err == nil && raw == nil) {
		return nil
	}
	if err != nil {
		return err
	}
	return json.Unmarshal(raw, dst)
}
