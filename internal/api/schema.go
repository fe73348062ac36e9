package api

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
)

// Fingerprint statuses returned by CompareFingerprints.
const (
	FingerprintMatch      = "MATCH"
	FingerprintMismatch   = "MISMATCH"
	FingerprintLocalOnly  = "LOCAL_ONLY"
	FingerprintRemoteOnly = "REMOTE_ONLY"
)

// Schema sync modes (the schema_sync option).
const (
	SyncStrict = "strict"
	SyncAuto   = "auto"
	SyncManual = "manual"
)

// TableFingerprint is one row of steep_repl.compare_fingerprints: a table and its fingerprint
// here (Local) and on the peer (Peer); nil on the side that lacks the table.
type TableFingerprint struct {
	Schema string  `json:"schema"`
	Table  string  `json:"table"`
	Status string  `json:"status"`
	Local  *string `json:"local_fingerprint"`
	Peer   *string `json:"peer_fingerprint"`
}

// CapturedFingerprint is a row of steep_repl.schema_fingerprints.
type CapturedFingerprint struct {
	Schema      string    `json:"schema"`
	Table       string    `json:"table"`
	Fingerprint string    `json:"fingerprint"`
	CapturedAt  time.Time `json:"captured_at"`
}

// SchemaDifference is one row of steep_repl.schema_diff, seen from the local node: Kind is
// missing (on the peer, not here), extra (here, not on the peer), type, default, nullability or
// primary_key; Column is nil for a whole table or its primary key; Local and Peer are the
// column definitions (or key columns) on each side.
type SchemaDifference struct {
	Schema      string  `json:"schema"`
	Table       string  `json:"table"`
	Column      *string `json:"column"`
	Kind        string  `json:"difference"`
	Local       *string `json:"local_definition"`
	Peer        *string `json:"peer_definition"`
	Description string  `json:"description"`
}

// DDLStatement is one statement of steep_repl.schema_ddl; Table is nil for CREATE SCHEMA.
type DDLStatement struct {
	Schema string  `json:"schema"`
	Table  *string `json:"table"`
	SQL    string  `json:"statement"`
}

// SchemaScope limits a schema call to some tables ("schema.table", or "table" for public,
// names as stored) and schemas; empty means every user table.
type SchemaScope struct {
	Tables  []string `json:"tables,omitempty"`
	Schemas []string `json:"schemas,omitempty"`
}

// SyncOptions are steep_repl.schema_sync's options.
type SyncOptions struct {
	SchemaScope
	// Confirm lets manual mode go on despite differences (they are recorded as accepted).
	Confirm bool `json:"confirm,omitempty"`
}

// SyncReport is what steep_repl.schema_sync (and start_init's schema step) found and did.
// Status is match, synced (auto applied Applied) or accepted (manual, confirmed).
type SyncReport struct {
	Peer        string   `json:"peer"`
	Node        string   `json:"node"`
	Mode        string   `json:"mode"`
	Status      string   `json:"status"`
	Tables      int      `json:"tables"`
	Differences []string `json:"differences"`
	Applied     []string `json:"applied"`
}

// DriftReport is the outcome of steep_repl.check_drift.
type DriftReport struct {
	Node        string    `json:"node"`
	Source      string    `json:"source"`
	Status      string    `json:"status"` // match or drift
	CheckedAt   time.Time `json:"checked_at"`
	Differences []string  `json:"differences"`
	Diverged    bool      `json:"diverged"`
}

// ComputeFingerprint returns the fingerprint of one local table (names as stored, unquoted).
func ComputeFingerprint(ctx context.Context, db DB, schema, table string) (string, error) {
	var fp string
	if err := db.QueryRow(ctx, q(qComputeFingerprint), schema, table).Scan(&fp); err != nil {
		return "", fmt.Errorf("fingerprint of %s.%s: %w", schema, table, err)
	}
	return fp, nil
}

// CaptureFingerprints records every local table's fingerprint and returns how many tables it covered.
func CaptureFingerprints(ctx context.Context, db DB) (int, error) {
	var n int
	if err := db.QueryRow(ctx, q(qCaptureFingerprints)).Scan(&n); err != nil {
		return 0, fmt.Errorf("capture fingerprints: %w", err)
	}
	return n, nil
}

// ListFingerprints returns the captured fingerprints.
func ListFingerprints(ctx context.Context, db DB) ([]CapturedFingerprint, error) {
	rows, err := db.Query(ctx, q(qListFingerprints))
	if err != nil {
		return nil, fmt.Errorf("list fingerprints: %w", err)
	}
	out, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (CapturedFingerprint, error) {
		var f CapturedFingerprint
		err := row.Scan(&f.Schema, &f.Table, &f.Fingerprint, &f.CapturedAt)
		return f, err
	})
	if err != nil {
		return nil, fmt.Errorf("list fingerprints: %w", err)
	}
	return out, nil
}

// CompareFingerprints compares every table here with peer's.
func CompareFingerprints(ctx context.Context, db DB, peer string) ([]TableFingerprint, error) {
	rows, err := db.Query(ctx, q(qCompareFingerprints), peer)
	if err != nil {
		return nil, fmt.Errorf("compare fingerprints with %s: %w", peer, err)
	}
	out, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (TableFingerprint, error) {
		var f TableFingerprint
		err := row.Scan(&f.Schema, &f.Table, &f.Status, &f.Local, &f.Peer)
		return f, err
	})
	if err != nil {
		return nil, fmt.Errorf("compare fingerprints with %s: %w", peer, err)
	}
	return out, nil
}

// SchemaDiff lists the differences with peer: of every table (schema and table ""), of one
// schema (table ""), or of one table.
func SchemaDiff(ctx context.Context, db DB, peer, schema, table string) ([]SchemaDifference, error) {
	rows, err := db.Query(ctx, q(qSchemaDiff), peer, optionalText(schema), optionalText(table))
	if err != nil {
		return nil, fmt.Errorf("schema diff with %s: %w", peer, err)
	}
	out, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (SchemaDifference, error) {
		var d SchemaDifference
		err := row.Scan(&d.Schema, &d.Table, &d.Column, &d.Kind, &d.Local, &d.Peer, &d.Description)
		return d, err
	})
	if err != nil {
		return nil, fmt.Errorf("schema diff with %s: %w", peer, err)
	}
	return out, nil
}

// SchemaDDL returns the statements recreating the tables in scope: the local node's when
// peer is "", else peer's.
func SchemaDDL(ctx context.Context, db DB, peer string, scope SchemaScope) ([]DDLStatement, error) {
	b, err := json.Marshal(scope)
	if err != nil {
		return nil, fmt.Errorf("schema ddl: encode options: %w", err)
	}
	rows, err := db.Query(ctx, q(qSchemaDDL), optionalText(peer), string(b))
	if err != nil {
		return nil, fmt.Errorf("schema ddl: %w", err)
	}
	out, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (DDLStatement, error) {
		var s DDLStatement
		err := row.Scan(&s.Schema, &s.Table, &s.SQL)
		return s, err
	})
	if err != nil {
		return nil, fmt.Errorf("schema ddl: %w", err)
	}
	return out, nil
}

// SchemaSync runs steep_repl.schema_sync against peer; mode "" takes the configured default.
func SchemaSync(ctx context.Context, db DB, peer, mode string, opts SyncOptions) (*SyncReport, error) {
	b, err := json.Marshal(opts)
	if err != nil {
		return nil, fmt.Errorf("schema sync with %s: encode options: %w", peer, err)
	}
	var raw []byte
	if err := db.QueryRow(ctx, q(qSchemaSync), peer, optionalText(mode), string(b)).Scan(&raw); err != nil {
		return nil, fmt.Errorf("schema sync with %s: %w", peer, err)
	}
	var r SyncReport
	if err := json.Unmarshal(raw, &r); err != nil {
		return nil, fmt.Errorf("schema sync with %s: decode report: %w", peer, err)
	}
	return &r, nil
}

// CheckDrift checks node (the local node when "") against its source now.
func CheckDrift(ctx context.Context, db DB, node string) (*DriftReport, error) {
	var raw []byte
	if err := db.QueryRow(ctx, q(qCheckDrift), optionalText(node)).Scan(&raw); err != nil {
		return nil, fmt.Errorf("check drift: %w", err)
	}
	var r DriftReport
	if err := json.Unmarshal(raw, &r); err != nil {
		return nil, fmt.Errorf("check drift: decode report: %w", err)
	}
	return &r, nil
}

// ConfigureSchemaSync sets the default sync mode ("" keeps it) and the drift check interval
// (nil keeps it, 0 turns the periodic check off).
func ConfigureSchemaSync(ctx context.Context, db DB, mode string, driftEvery *time.Duration) error {
	if _, err := db.Exec(ctx, q(qConfigureSchemaSync), optionalText(mode), driftEvery); err != nil {
		return fmt.Errorf("configure schema sync: %w", err)
	}
	return nil
}

// optionalText passes "" as SQL NULL.
func optionalText(s string) *string {
	if s == "" {
		return nil
	}
	return &s
}
