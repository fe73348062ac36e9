package api

import (
	"context"
	"encoding/json"
	"fmt"

	"github.com/jackc/pgx/v5"
)

// Difference is a row that differs between this node and a peer (steep_repl.verify).
type Difference struct {
	Schema string          `json:"schema_name"`
	Table  string          `json:"table_name"`
	Key    json.RawMessage `json:"key"`
	// Kind is missing (the peer has the row, this node not), extra, differs, or unsettled
	// (the peer kept changing it through every re-read).
	Kind string `json:"kind"`
}

// VerifyOptions are verify's options; zero values keep the server's defaults.
type VerifyOptions struct {
	Rounds           int `json:"rounds,omitempty"`
	CatchUpTimeout   int `json:"catch_up_timeout,omitempty"`
	StatementTimeout int `json:"statement_timeout,omitempty"`
}

// Verify calls steep_repl.verify on this node against peer: one Difference per row that is not
// the same on both (none when equal). tables nil means every table.
func Verify(ctx context.Context, db DB, peer string, tables []string, opts VerifyOptions) ([]Difference, error) {
	b, err := json.Marshal(opts)
	if err != nil {
		return nil, fmt.Errorf("verify against %s: encode options: %w", peer, err)
	}
	rows, err := db.Query(ctx, q(qVerify), peer, tables, string(b))
	if err != nil {
		return nil, fmt.Errorf("verify against %s: %w", peer, err)
	}
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (Difference, error) {
		var d Difference
		var key string
		err := r.Scan(&d.Schema, &d.Table, &key, &d.Kind)
		d.Key = json.RawMessage(key)
		return d, err
	})
	if err != nil {
		return nil, fmt.Errorf("verify against %s: %w", peer, err)
	}
	return out, nil
}

// Overlap is how one table's rows overlap between this node and a peer (steep_repl.analyze_overlap).
type Overlap struct {
	Schema      string `json:"schema_name"`
	Table       string `json:"table_name"`
	Identical   int64  `json:"identical"`
	Conflicting int64  `json:"conflicting"`
	LocalOnly   int64  `json:"local_only"`
	PeerOnly    int64  `json:"peer_only"`
}

// AnalyzeOverlap calls steep_repl.analyze_overlap on this node against peer (tables nil: all);
// the keys of the rows that are not identical stay in steep_repl.overlap_rows.
func AnalyzeOverlap(ctx context.Context, db DB, peer string, tables []string) ([]Overlap, error) {
	rows, err := db.Query(ctx, q(qAnalyzeOverlap), peer, tables)
	if err != nil {
		return nil, fmt.Errorf("analyze overlap with %s: %w", peer, err)
	}
	out, err := pgx.CollectRows(rows, pgx.RowToStructByPos[Overlap])
	if err != nil {
		return nil, fmt.Errorf("analyze overlap with %s: %w", peer, err)
	}
	return out, nil
}

// InitVerify runs the verification a SYNCHRONIZED init asked for ("verify": true) and returns
// the detail of the init.verified event it recorded (or why it was skipped).
func InitVerify(ctx context.Context, db DB, node string) (map[string]any, error) {
	var s string
	if err := db.QueryRow(ctx, q(qInitVerify), node).Scan(&s); err != nil {
		return nil, fmt.Errorf("verify the init of %s: %w", node, err)
	}
	var out map[string]any
	if err := json.Unmarshal([]byte(s), &out); err != nil {
		return nil, fmt.Errorf("verify the init of %s: decode result: %w", node, err)
	}
	return out, nil
}
