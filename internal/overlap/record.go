package overlap

import (
	"context"
	"encoding/binary"
	"fmt"
	"strconv"
	"strings"

	"github.com/jackc/pgx/v5/pgconn"

	"github.com/steepdb/steep_repl/internal/api"
)

// Type oids of the parameters record sends (binary format).
const (
	oidInt8      = 20
	oidText      = 25
	oidTextArray = 1009
	oidInt8Array = 1016
	paramsBefore = 7 // $1..$7 before the key columns' arrays and names
	formatBinary = 1
)

// recordSettings are the settings analyze_overlap builds its jsonb keys under (sql/72_verify.sql):
// the same key prints the same whatever the DBA's session says.
const recordSettings = `SET LOCAL TimeZone = 'UTC'; SET LOCAL DateStyle = 'ISO'; SET LOCAL IntervalStyle = 'postgres';
SET LOCAL extra_float_digits = 1; SET LOCAL bytea_output = 'hex'`

// recordSQL calls steep_repl.overlap_record with the keys turned back into analyze_overlap's
// jsonb by the server: each key column's send forms go as a binary array of its type ($8,
// $10, ...), its name as text ($9, $11, ...), and jsonb_build_object rebuilds each key.
func recordSQL(t api.OverlapTable) string {
	pairs := make([]string, len(t.KeyCols))
	arrays := make([]string, len(t.KeyCols))
	cols := make([]string, len(t.KeyCols))
	for i := range t.KeyCols {
		n := paramsBefore + 1 + 2*i
		pairs[i] = fmt.Sprintf("$%d::pg_catalog.text, k.c%d", n+1, i)
		arrays[i] = fmt.Sprintf("pg_catalog.unnest($%d::%s[])", n, t.KeyTypes[i])
		cols[i] = fmt.Sprintf("c%d", i)
	}
	return fmt.Sprintf(`SELECT schema_name, table_name, identical, conflicting, local_only, peer_only
FROM steep_repl.overlap_record($1, $2, $3, $4,
  ARRAY(SELECT pg_catalog.jsonb_build_object(%s) FROM ROWS FROM (%s) WITH ORDINALITY k(%s, o) ORDER BY k.o),
  $5, $6, $7)`, strings.Join(pairs, ", "), strings.Join(arrays, ", "), strings.Join(cols, ", "))
}

// record writes t's diffs with peer into steep_repl.overlap_rows (replacing the last analysis')
// and returns the counts the server computed from them.
func record(ctx context.Context, conn *pgconn.PgConn, peer string, t api.OverlapTable, identical int64, diffs []Diff) (api.Overlap, error) {
	n := paramsBefore + 2*len(t.KeyCols)
	vals, oids, formats := make([][]byte, n), make([]uint32, n), make([]int16, n)
	for i := range formats {
		formats[i] = formatBinary
	}
	set := func(i int, oid uint32, v []byte) { vals[i], oids[i] = v, oid }
	set(0, oidText, []byte(peer))
	set(1, oidText, []byte(t.Schema))
	set(2, oidText, []byte(t.Table))
	set(3, oidInt8, binary.BigEndian.AppendUint64(nil, uint64(identical)))
	cats, lh, ph := make([][]byte, len(diffs)), make([][]byte, len(diffs)), make([][]byte, len(diffs))
	keys := make([][][]byte, len(t.KeyCols))
	for i, d := range diffs {
		cats[i] = []byte(d.Category())
		lh[i], ph[i] = int8Bytes(d.Local), int8Bytes(d.PeerHash)
		for c, v := range splitKey(d.Key, t.KeyLens) {
			keys[c] = append(keys[c], v)
		}
	}
	set(4, oidTextArray, arrayBytes(oidText, cats))
	set(5, oidInt8Array, arrayBytes(oidInt8, lh))
	set(6, oidInt8Array, arrayBytes(oidInt8, ph))
	for c := range t.KeyCols {
		// The array's type is left to the server (the cast in recordSQL); its elements carry the
		// column type's oid, which array_recv checks.
		set(paramsBefore+2*c, 0, arrayBytes(uint32(t.KeyOIDs[c]), keys[c]))
		set(paramsBefore+2*c+1, oidText, []byte(t.KeyCols[c]))
	}

	var o api.Overlap
	if err := conn.Exec(ctx, "BEGIN; "+recordSettings).Close(); err != nil {
		return o, err
	}
	res := conn.ExecParams(ctx, recordSQL(t), vals, oids, formats, nil).Read()
	if res.Err == nil && len(res.Rows) != 1 {
		res.Err = fmt.Errorf("overlap_record returned %d rows", len(res.Rows))
	}
	if res.Err != nil {
		_ = conn.Exec(context.Background(), "ROLLBACK").Close()
		return o, res.Err
	}
	if err := conn.Exec(ctx, "COMMIT").Close(); err != nil {
		return o, err
	}
	r := res.Rows[0]
	o.Schema, o.Table = string(r[0]), string(r[1])
	for i, p := range []*int64{&o.Identical, &o.Conflicting, &o.LocalOnly, &o.PeerOnly} {
		v, err := strconv.ParseInt(string(r[2+i]), 10, 64)
		if err != nil {
			return o, fmt.Errorf("overlap_record count: %w", err)
		}
		*p = v
	}
	return o, nil
}

func int8Bytes(v *int64) []byte {
	if v == nil {
		return nil
	}
	return binary.BigEndian.AppendUint64(nil, uint64(*v))
}

// arrayBytes is the binary form of a one-dimensional array (array_recv's input); a nil
// element is NULL.
func arrayBytes(elem uint32, elems [][]byte) []byte {
	b := make([]byte, 0, 20+len(elems)*12)
	if len(elems) == 0 {
		b = binary.BigEndian.AppendUint32(b, 0) // no dimension
		b = binary.BigEndian.AppendUint32(b, 0)
		return binary.BigEndian.AppendUint32(b, elem)
	}
	hasNull := uint32(0)
	for _, e := range elems {
		if e == nil {
			hasNull = 1
		}
	}
	b = binary.BigEndian.AppendUint32(b, 1)
	b = binary.BigEndian.AppendUint32(b, hasNull)
	b = binary.BigEndian.AppendUint32(b, elem)
	b = binary.BigEndian.AppendUint32(b, uint32(len(elems)))
	b = binary.BigEndian.AppendUint32(b, 1)
	for _, e := range elems {
		if e == nil {
			b = binary.BigEndian.AppendUint32(b, 0xFFFFFFFF)
			continue
		}
		b = binary.BigEndian.AppendUint32(b, uint32(len(e)))
		b = append(b, e...)
	}
	return b
}
