package overlap

import (
	"bufio"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/steepdb/steep_repl/internal/api"
)

// Mode is how a table's keys and row hashes are streamed.
type Mode int

const (
	// Chunked: steep_repl.key_hash_chunks, one COPY row per ~64 kB of the table's rows' key
	// send forms and row hashes (16 bytes a row for a bigint key) from one sequential scan in C.
	// The default where both nodes have the function (steep_repl 1.1 built after it); otherwise
	// Aggregated, which gives the same bytes.
	Chunked Mode = iota
	// Aggregated: the same bytes per 32-block range, built in SQL (see streamSQL): measured at
	// 1.7x the hash floor on the server alone, Chunked about a quarter of it.
	Aggregated
	// PerRow: one COPY row per table row (its key columns and row hash as binary COPY fields:
	// 31 bytes a row for a bigint key, with the CopyData header).
	PerRow
)

// rangeBlocks is the size of an aggregated range: ~1,500 rows of a 150-byte row, so the
// per-COPY-row overhead (~11 bytes) is nothing per table row while a range stays small.
const rangeBlocks = 32

// row is one table row as streamed: its key (each key column's send form, fixed-length ones
// raw, others with a 4-byte length prefix: the same bytes on both nodes for the same key) and
// its row_hash. The key aliases the COPY row it came in (one buffer per range): the join copies
// it only for a row it has to keep.
type row struct {
	key  []byte
	hash int64
}

// streamSQL is the COPY that streams t's keys and hashes, the same on both nodes; everything
// qualified (the peer's session has search_path = pg_catalog, the local one the DBA's).
//
// Aggregated reads each range with a TID range scan (ctid >= (b,0) AND ctid < (b+32,0)) from a
// generate_series over the table's blocks, so the ranges come in physical order, one aggregate
// at a time (no hash aggregate holding the whole table, no ORDER BY), and no per-row
// ctid::text parsing.
func streamSQL(t api.OverlapTable, mode Mode) string {
	rel := pgx.Identifier{t.Schema, t.Table}.Sanitize()
	hash := "steep_repl.row_hash(r.*)"
	if mode == PerRow {
		cols := make([]string, 0, len(t.KeyCols)+1)
		for _, c := range t.KeyCols {
			cols = append(cols, "r."+pgx.Identifier{c}.Sanitize())
		}
		return fmt.Sprintf("COPY (SELECT %s, %s FROM %s r) TO STDOUT (FORMAT binary)", strings.Join(cols, ", "), hash, rel)
	}
	if mode == Chunked {
		return fmt.Sprintf("COPY (SELECT steep_repl.key_hash_chunks(%s::pg_catalog.regclass)) TO STDOUT (FORMAT binary)", quoteLiteral(rel))
	}
	parts := make([]string, 0, len(t.KeyCols)+1)
	for i, c := range t.KeyCols {
		send := fmt.Sprintf("%s(r.%s)", t.KeySends[i], pgx.Identifier{c}.Sanitize())
		if t.KeyLens[i] < 0 {
			send = fmt.Sprintf("pg_catalog.int4send(pg_catalog.octet_length(%[1]s)) OPERATOR(pg_catalog.||) %[1]s", send)
		}
		parts = append(parts, send)
	}
	parts = append(parts, "pg_catalog.int8send("+hash+")")
	return fmt.Sprintf(`COPY (SELECT (SELECT pg_catalog.string_agg(%s, ''::pg_catalog.bytea) FROM %s r
  WHERE r.ctid OPERATOR(pg_catalog.>=) pg_catalog.format('(%%s,0)', b OPERATOR(pg_catalog.*) %d)::pg_catalog.tid
    AND r.ctid OPERATOR(pg_catalog.<) pg_catalog.format('(%%s,0)', (b OPERATOR(pg_catalog.+) 1) OPERATOR(pg_catalog.*) %d)::pg_catalog.tid)
FROM pg_catalog.generate_series(0::pg_catalog.int8, pg_catalog.pg_relation_size(%s::pg_catalog.regclass)
  OPERATOR(pg_catalog./) pg_catalog.current_setting('block_size')::pg_catalog.int8 OPERATOR(pg_catalog./) %d) b) TO STDOUT (FORMAT binary)`,
		strings.Join(parts, " OPERATOR(pg_catalog.||) "), rel, rangeBlocks, rangeBlocks, quoteLiteral(rel), rangeBlocks)
}

func quoteLiteral(s string) string { return "'" + strings.ReplaceAll(s, "'", "''") + "'" }

// stream runs streamSQL(t) on conn and sends its rows, in batches, to out; the caller's
// context ends it early.
func stream(ctx context.Context, conn *pgconn.PgConn, t api.OverlapTable, mode Mode, out chan<- []row) error {
	pr, pw := io.Pipe()
	done := make(chan error, 1)
	go func() {
		_, err := conn.CopyTo(ctx, pw, streamSQL(t, mode))
		pw.CloseWithError(err)
		done <- err
	}()
	perr := parse(ctx, bufio.NewReaderSize(pr, 1<<16), t, mode, out)
	pr.CloseWithError(errStopped)
	cerr := <-done
	if cerr != nil {
		return cerr
	}
	return perr
}

var errStopped = errors.New("overlap: stream stopped")

var copySignature = []byte("PGCOPY\n\377\r\n\000")

// parse reads a binary COPY stream (header, tuples, trailer) into batches of rows.
func parse(ctx context.Context, r *bufio.Reader, t api.OverlapTable, mode Mode, out chan<- []row) error {
	var hdr [19]byte
	if _, err := io.ReadFull(r, hdr[:]); err != nil {
		return fmt.Errorf("copy header: %w", err)
	}
	if string(hdr[:11]) != string(copySignature) {
		return errors.New("copy header: not a binary COPY stream")
	}
	if ext := binary.BigEndian.Uint32(hdr[15:]); ext > 0 {
		if _, err := r.Discard(int(ext)); err != nil {
			return fmt.Errorf("copy header: %w", err)
		}
	}
	batch := make([]row, 0, 4096)
	var field []byte
	for {
		var n [2]byte
		if _, err := io.ReadFull(r, n[:]); err != nil {
			return fmt.Errorf("copy tuple: %w", err)
		}
		nf := int16(binary.BigEndian.Uint16(n[:]))
		if nf == -1 {
			break
		}
		var key []byte
		for i := 0; i < int(nf); i++ {
			var err error
			// A range's rows alias its buffer: a new one per range, reused per table row.
			if mode != PerRow {
				field = nil
			}
			if field, err = readField(r, field[:0]); err != nil {
				return err
			}
			switch {
			case mode != PerRow:
				if field != nil {
					if batch, err = splitRange(field, t.KeyLens, batch); err != nil {
						return err
					}
				}
			case i < len(t.KeyLens):
				if t.KeyLens[i] < 0 {
					key = binary.BigEndian.AppendUint32(key, uint32(len(field)))
				}
				key = append(key, field...)
			default:
				if len(field) != 8 {
					return fmt.Errorf("copy tuple: a row hash of %d bytes", len(field))
				}
				batch = append(batch, row{key, int64(binary.BigEndian.Uint64(field))})
			}
		}
		if len(batch) >= 4096 {
			if err := send(ctx, out, batch); err != nil {
				return err
			}
			batch = make([]row, 0, 4096)
		}
	}
	if len(batch) > 0 {
		return send(ctx, out, batch)
	}
	return nil
}

// send hands a batch to the join unless the analysis was stopped.
func send(ctx context.Context, out chan<- []row, batch []row) error {
	select {
	case out <- batch:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// readField reads one binary COPY field into buf; nil for NULL.
func readField(r *bufio.Reader, buf []byte) ([]byte, error) {
	var l [4]byte
	if _, err := io.ReadFull(r, l[:]); err != nil {
		return nil, fmt.Errorf("copy field: %w", err)
	}
	n := int32(binary.BigEndian.Uint32(l[:]))
	if n < 0 {
		return nil, nil
	}
	if cap(buf) < int(n) {
		buf = make([]byte, n)
	}
	buf = buf[:n]
	if _, err := io.ReadFull(r, buf); err != nil {
		return nil, fmt.Errorf("copy field: %w", err)
	}
	return buf, nil
}

// splitRange appends the rows of one aggregated range (key send forms, then an 8-byte hash).
func splitRange(b []byte, lens []int32, batch []row) ([]row, error) {
	for len(b) > 0 {
		n, err := keyLen(b, lens)
		if err != nil {
			return batch, err
		}
		if len(b) < n+8 {
			return batch, errors.New("copy range: truncated row")
		}
		batch = append(batch, row{b[:n:n], int64(binary.BigEndian.Uint64(b[n:]))})
		b = b[n+8:]
	}
	return batch, nil
}

// keyLen is the length of the key at the start of b.
func keyLen(b []byte, lens []int32) (int, error) {
	n := 0
	for _, l := range lens {
		if l < 0 {
			if len(b) < n+4 {
				return 0, errors.New("copy range: truncated key")
			}
			l = int32(binary.BigEndian.Uint32(b[n:])) + 4
		}
		n += int(l)
		if n > len(b) {
			return 0, errors.New("copy range: truncated key")
		}
	}
	return n, nil
}

// splitKey is a key's columns' send forms (without their length prefixes).
func splitKey(key string, lens []int32) [][]byte {
	b := []byte(key)
	out := make([][]byte, len(lens))
	for i, l := range lens {
		if l < 0 {
			l = int32(binary.BigEndian.Uint32(b))
			b = b[4:]
		}
		out[i] = b[:l]
		b = b[l:]
	}
	return out
}
