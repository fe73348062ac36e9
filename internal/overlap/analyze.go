// Package overlap is the streaming overlap analysis steep-repl analyze-overlap runs: each
// table's keys and row hashes stream from both nodes at once as binary COPY and are joined
// here, and what is not identical is recorded as steep_repl.analyze_overlap records it
// (steep_repl.overlap_record, sql/76_overlap_record.sql).
package overlap

import (
	"context"
	"fmt"
	"slices"

	"github.com/jackc/pgx/v5"
	"golang.org/x/sync/errgroup"

	"github.com/steepdb/steep_repl/internal/api"
)

// Analyze compares the tables in scope (nil: every table) of this node (local: the DBA's own
// session, which reads its tables) with peer's (connectPeer: a session to the peer, search_path
// pg_catalog, opened once the scope is known to be good) and records the result; one Overlap
// per table, as analyze_overlap returns. Every table is checked on both nodes before any is
// read: bad input records nothing.
func Analyze(ctx context.Context, local *pgx.Conn, connectPeer func(context.Context) (*pgx.Conn, error),
	peer string, tables []string, mode Mode) ([]api.Overlap, error) {
	scope, err := api.OverlapScope(ctx, local, peer, tables)
	if err != nil {
		return nil, err
	}
	peerConn, err := connectPeer(ctx)
	if err != nil {
		return nil, err
	}
	defer peerConn.Close(context.Background())
	for _, t := range scope {
		if err := checkPeer(ctx, peerConn, peer, t); err != nil {
			return nil, err
		}
	}
	if mode == Chunked {
		if mode, err = chunkedOnBoth(ctx, local, peerConn); err != nil {
			return nil, err
		}
	}
	out := make([]api.Overlap, 0, len(scope))
	for _, t := range scope {
		identical, diffs, err := compareTable(ctx, local, peerConn, t, mode)
		if err != nil {
			return nil, fmt.Errorf("analyze overlap of %s.%s with %s: %w", t.Schema, t.Table, peer, err)
		}
		o, err := record(ctx, local.PgConn(), peer, t, identical, diffs)
		if err != nil {
			return nil, fmt.Errorf("record the overlap of %s.%s with %s: %w", t.Schema, t.Table, peer, err)
		}
		out = append(out, o)
	}
	return out, nil
}

// checkPeer refuses a table the peer lacks, or keys differently (the keys here are compared
// with its keys byte for byte), or a peer without row_hash.
func checkPeer(ctx context.Context, conn *pgx.Conn, peer string, t api.OverlapTable) error {
	k, err := api.OverlapPeerTable(ctx, conn, t.Schema, t.Table)
	switch {
	case err != nil:
		return fmt.Errorf("node %s: %w", peer, err)
	case !k.RowHash:
		return fmt.Errorf("node %s has no steep_repl.row_hash (its steep_repl is older than 1.1): ALTER EXTENSION steep_repl UPDATE on it", peer)
	case !k.Exists:
		return fmt.Errorf("node %s has no table %s.%s: leave it out with --tables", peer, t.Schema, t.Table)
	case !slices.Equal(k.Cols, t.KeyCols) || !slices.Equal(k.Types, t.KeyTypes):
		return fmt.Errorf("%s.%s has primary key (%v %v) here but (%v %v) on node %s: the keys cannot be compared",
			t.Schema, t.Table, t.KeyCols, t.KeyTypes, k.Cols, k.Types, peer)
	}
	return nil
}

// chunkedOnBoth is Chunked where both nodes have steep_repl.key_hash_chunks, else Aggregated:
// the two give the same bytes, but a node whose extension predates the function has only the SQL.
func chunkedOnBoth(ctx context.Context, local, peerConn *pgx.Conn) (Mode, error) {
	for _, c := range []*pgx.Conn{local, peerConn} {
		ok, err := api.HasKeyHashChunks(ctx, c)
		if err != nil {
			return 0, err
		}
		if !ok {
			return Aggregated, nil
		}
	}
	return Chunked, nil
}

// maxBacklog is how many rows one side may be ahead of the other before it is read no more.
const maxBacklog = 1 << 18

// compareTable streams t from both nodes at once into the joiner, which walks them in step.
func compareTable(ctx context.Context, local, peerConn *pgx.Conn, t api.OverlapTable, mode Mode) (int64, []Diff, error) {
	g, gctx := errgroup.WithContext(ctx)
	sides := [2]chan []row{make(chan []row, 16), make(chan []row, 16)}
	for i, c := range []*pgx.Conn{local, peerConn} {
		g.Go(func() error {
			defer close(sides[i])
			return stream(gctx, c.PgConn(), t, mode, sides[i])
		})
	}
	j := newJoiner()
	open := 2
	for open > 0 {
		// A side far ahead of the other waits (its COPY with it): memory stays bounded.
		in := sides
		for s := range in {
			if j.backlog(s) > maxBacklog {
				in[s] = nil
			}
		}
		select {
		case b, ok := <-in[0]:
			if !ok {
				sides[0], open = nil, open-1
				j.close(0)
				continue
			}
			j.add(0, b)
		case b, ok := <-in[1]:
			if !ok {
				sides[1], open = nil, open-1
				j.close(1)
				continue
			}
			j.add(1, b)
		case <-gctx.Done():
			open = 0
		}
	}
	if err := g.Wait(); err != nil {
		return 0, nil, err
	}
	return j.identical, j.finish(), nil
}
