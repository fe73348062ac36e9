package harness

import (
	"cmp"
	"context"
	"fmt"
	"maps"
	"slices"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

// CompareOptions selects the tables Compare reads.
type CompareOptions struct {
	// Schemas to compare; default: every schema except steep_repl, pg_* and
	// information_schema.
	Schemas []string
	// Tables, when set, limits the comparison to these "schema.table" names
	// ("table" alone means public.table); Schemas is then ignored. A listed
	// table missing on both sides is an error.
	Tables []string
}

// snapshotSettings make both sessions render every value as the same text.
const snapshotSettings = `SET LOCAL datestyle = 'ISO, YMD';
SET LOCAL timezone = 'UTC';
SET LOCAL extra_float_digits = 3;
SET LOCAL intervalstyle = 'postgres';
SET LOCAL bytea_output = 'hex';
SET LOCAL lc_monetary = 'C';
SET LOCAL statement_timeout = 0`

// Compare reads every ordinary table (relkind 'r', partitions included) of the
// selected schemas on both sides, each side in one repeatable-read snapshot,
// and reports how their rows differ. Rows are matched by primary key, or as a
// multiset of whole rows when a table has none (see TableReport).
func Compare(ctx context.Context, a, b *pgxpool.Pool, opt CompareOptions) (*Report, error) {
	txA, err := beginSnapshot(ctx, a)
	if err != nil {
		return nil, fmt.Errorf("compare: side A: %w", err)
	}
	defer txA.Rollback(context.WithoutCancel(ctx))
	txB, err := beginSnapshot(ctx, b)
	if err != nil {
		return nil, fmt.Errorf("compare: side B: %w", err)
	}
	defer txB.Rollback(context.WithoutCancel(ctx))

	want, err := parseTableNames(opt.Tables)
	if err != nil {
		return nil, err
	}
	tablesA, err := listTables(ctx, txA, opt.Schemas, want)
	if err != nil {
		return nil, fmt.Errorf("compare: side A: %w", err)
	}
	tablesB, err := listTables(ctx, txB, opt.Schemas, want)
	if err != nil {
		return nil, fmt.Errorf("compare: side B: %w", err)
	}
	for name := range want {
		if _, ok := tablesA[name]; !ok {
			if _, ok := tablesB[name]; !ok {
				return nil, fmt.Errorf("compare: table %s.%s not found on either side", name.schema, name.table)
			}
		}
	}

	names := slices.SortedFunc(maps.Keys(mergeKeys(tablesA, tablesB)), func(x, y qualName) int {
		return cmp.Or(cmp.Compare(x.schema, y.schema), cmp.Compare(x.table, y.table))
	})
	report := &Report{}
	for _, name := range names {
		tr := TableReport{Schema: name.schema, Table: name.table}
		oidA, inA := tablesA[name]
		oidB, inB := tablesB[name]
		switch {
		case !inB:
			tr.OnlyInA = true
			tr.RowsA, err = countRows(ctx, txA, name)
		case !inA:
			tr.OnlyInB = true
			tr.RowsB, err = countRows(ctx, txB, name)
		default:
			err = compareTable(ctx, txA, txB, name, oidA, oidB, &tr)
		}
		if err != nil {
			return nil, fmt.Errorf("compare table %s.%s: %w", name.schema, name.table, err)
		}
		report.Tables = append(report.Tables, tr)
	}
	return report, nil
}

// AssertEqual compares database db ("" = postgres) on nodes a and b and fails
// the test with the report unless every table is equal.
func AssertEqual(t testing.TB, a, b *Node, db string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), queryTimeout)
	defer cancel()
	report, err := Compare(ctx, a.Pool(t, db), b.Pool(t, db), CompareOptions{})
	if err != nil {
		t.Fatalf("compare %s on %s (A) and %s (B): %v", dbName(db), a.Name, b.Name, err)
	}
	if !report.Equal() {
		t.Fatalf("database %s differs between %s (A) and %s (B): %s", dbName(db), a.Name, b.Name, report)
	}
}

func beginSnapshot(ctx context.Context, pool *pgxpool.Pool) (pgx.Tx, error) {
	tx, err := pool.BeginTx(ctx, pgx.TxOptions{IsoLevel: pgx.RepeatableRead, AccessMode: pgx.ReadOnly})
	if err != nil {
		return nil, fmt.Errorf("begin snapshot: %w", err)
	}
	if _, err := tx.Exec(ctx, snapshotSettings); err != nil {
		tx.Rollback(context.WithoutCancel(ctx))
		return nil, fmt.Errorf("set output formats: %w", err)
	}
	return tx, nil
}

// qualName is a table's schema and name, unquoted.
type qualName struct{ schema, table string }

func (q qualName) quoted() string { return quoteTable(q.schema, q.table) }

// quoteTable returns schema.table with both identifiers quoted.
func quoteTable(schema, table string) string {
	return pgx.Identifier{schema, table}.Sanitize()
}

func parseTableNames(names []string) (map[qualName]bool, error) {
	if len(names) == 0 {
		return nil, nil
	}
	want := make(map[qualName]bool, len(names))
	for _, s := range names {
		schema, table, ok := strings.Cut(s, ".")
		if !ok {
			schema, table = "public", s
		}
		if schema == "" || table == "" {
			return nil, fmt.Errorf("compare: bad table name %q: want schema.table", s)
		}
		want[qualName{schema, table}] = true
	}
	return want, nil
}

func mergeKeys(a, b map[qualName]uint32) map[qualName]bool {
	all := make(map[qualName]bool, len(a)+len(b))
	for k := range a {
		all[k] = true
	}
	for k := range b {
		all[k] = true
	}
	return all
}

// listTables returns the oid of every ordinary table selected by schemas (or
// the default schema filter) or, when want is set, of the wanted tables.
func listTables(ctx context.Context, tx pgx.Tx, schemas []string, want map[qualName]bool) (map[qualName]uint32, error) {
	q := `SELECT c.oid, n.nspname, c.relname
		FROM pg_catalog.pg_class c
		JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
		WHERE c.relkind = 'r' AND (
			CASE WHEN $1::bool THEN true
			     WHEN pg_catalog.cardinality($2::text[]) > 0 THEN n.nspname = ANY ($2::text[])
			     ELSE n.nspname NOT IN ('steep_repl', 'information_schema') AND n.nspname NOT LIKE 'pg\_%'
			END)`
	rows, err := tx.Query(ctx, q, want != nil, schemas)
	if err != nil {
		return nil, fmt.Errorf("list tables: %w", err)
	}
	defer rows.Close()
	tables := map[qualName]uint32{}
	for rows.Next() {
		var oid uint32
		var name qualName
		if err := rows.Scan(&oid, &name.schema, &name.table); err != nil {
			return nil, fmt.Errorf("list tables: %w", err)
		}
		if want == nil || want[name] {
			tables[name] = oid
		}
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list tables: %w", err)
	}
	return tables, nil
}

func countRows(ctx context.Context, tx pgx.Tx, name qualName) (int64, error) {
	var n int64
	if err := tx.QueryRow(ctx, "SELECT count(*) FROM "+name.quoted()).Scan(&n); err != nil {
		return 0, fmt.Errorf("count rows: %w", err)
	}
	return n, nil
}
