package api

import (
	"context"
	"fmt"

	"github.com/jackc/pgx/v5"
)

// OverlapTable is a table of a streaming overlap analysis (steep_repl.overlap_scope): its
// primary key columns with their types and how each is sent (KeyLens: the length of a
// fixed-length send form, -1 for a length-prefixed one; KeySends: the send function).
type OverlapTable struct {
	Schema   string
	Table    string
	KeyCols  []string
	KeyTypes []string
	KeyOIDs  []int64
	KeyLens  []int32
	KeySends []string
}

// OverlapScope is the scope of an overlap analysis with peer (tables nil: every table), with
// analyze_overlap's refusals: 42704 unknown peer, 42P01, 55000 and 42501.
func OverlapScope(ctx context.Context, db DB, peer string, tables []string) ([]OverlapTable, error) {
	rows, err := db.Query(ctx, q(qOverlapScope), peer, tables)
	if err != nil {
		return nil, fmt.Errorf("overlap scope with %s: %w", peer, err)
	}
	out, err := pgx.CollectRows(rows, pgx.RowToStructByPos[OverlapTable])
	if err != nil {
		return nil, fmt.Errorf("overlap scope with %s: %w", peer, err)
	}
	return out, nil
}

// PeerKey is what a peer says of a table: its primary key columns and types (empty when it has
// none), whether the table exists and whether the peer has steep_repl.row_hash.
type PeerKey struct {
	Cols, Types     []string
	Exists, RowHash bool
}

// OverlapPeerTable reads PeerKey of schema.table on a peer session (search_path pg_catalog).
func OverlapPeerTable(ctx context.Context, db DB, schema, table string) (PeerKey, error) {
	var k PeerKey
	err := db.QueryRow(ctx, q(qOverlapPeerTable), schema, table).Scan(&k.Cols, &k.Types, &k.Exists, &k.RowHash)
	if err != nil {
		return k, fmt.Errorf("primary key of %s.%s on the peer: %w", schema, table, err)
	}
	return k, nil
}

// HasKeyHashChunks is whether the node of db has steep_repl.key_hash_chunks.
func HasKeyHashChunks(ctx context.Context, db DB) (bool, error) {
	var ok bool
	if err := db.QueryRow(ctx, q(qHasKeyHashChunks)).Scan(&ok); err != nil {
		return false, fmt.Errorf("look for steep_repl.key_hash_chunks: %w", err)
	}
	return ok, nil
}

// CanReadConninfo is whether this session may read the nodes' registered conninfos.
func CanReadConninfo(ctx context.Context, db DB) (bool, error) {
	var ok bool
	if err := db.QueryRow(ctx, q(qCanReadConninfo)).Scan(&ok); err != nil {
		return false, fmt.Errorf("check access to the nodes' conninfos: %w", err)
	}
	return ok, nil
}
