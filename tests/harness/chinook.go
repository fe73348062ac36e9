package harness

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// ChinookTables is the number of tables the Chinook script creates.
const ChinookTables = 11

// sharedDir returns the directory holding datasets/: STEEP_SHARED_DIR or the
// "shared" sibling of the repository folder.
func sharedDir() (string, error) {
	if d := os.Getenv("STEEP_SHARED_DIR"); d != "" {
		return d, nil
	}
	root, err := repoRoot()
	if err != nil {
		return "", err
	}
	return filepath.Join(filepath.Dir(root), "shared"), nil
}

// databaseStmt matches the script's own DROP/CREATE DATABASE statements.
var databaseStmt = regexp.MustCompile(`(?i)^\s*(DROP|CREATE)\s+DATABASE\b`)

// stripChinook removes psql meta-commands (lines starting with a backslash)
// and the DROP/CREATE DATABASE statements, which are one line each in the
// script, leaving plain SQL for the target database.
func stripChinook(script string) string {
	lines := strings.Split(script, "\n")
	kept := lines[:0]
	for _, line := range lines {
		trimmed := strings.TrimLeft(line, " \t")
		if strings.HasPrefix(trimmed, `\`) || databaseStmt.MatchString(line) {
			continue
		}
		kept = append(kept, line)
	}
	return strings.Join(kept, "\n")
}

// LoadChinook loads the Chinook sample database (11 tables in schema public)
// into database db on n, creating db if missing, in one transaction, and
// checks that every table has rows. db must not already hold Chinook.
func LoadChinook(t testing.TB, n *Node, db string) {
	t.Helper()
	if err := loadChinook(t, n, db); err != nil {
		t.Fatalf("load chinook into %s on %s: %v", dbName(db), n.Name, err)
	}
}

func loadChinook(t testing.TB, n *Node, db string) error {
	dir, err := sharedDir()
	if err != nil {
		return err
	}
	path := filepath.Join(dir, "datasets", "chinook", "chinook.sql")
	raw, err := os.ReadFile(path)
	if err != nil {
		return fmt.Errorf("read script: %w", err)
	}
	if !QueryOne[bool](t, n, "", "SELECT EXISTS (SELECT FROM pg_catalog.pg_database WHERE datname = $1)", dbName(db)) {
		n.CreateDatabase(t, db)
	}
	ctx, cancel := context.WithTimeout(context.Background(), queryTimeout)
	defer cancel()
	pool := n.Pool(t, db)
	tx, err := pool.Begin(ctx)
	if err != nil {
		return fmt.Errorf("begin: %w", err)
	}
	defer tx.Rollback(ctx)
	if _, err := tx.Exec(ctx, stripChinook(string(raw))); err != nil { // no args: simple protocol, many statements
		return fmt.Errorf("run %s: %w", path, err)
	}
	if err := tx.Commit(ctx); err != nil {
		return fmt.Errorf("commit: %w", err)
	}
	counts, err := chinookCounts(ctx, t, n, db)
	if err != nil {
		return err
	}
	if len(counts) != ChinookTables {
		return fmt.Errorf("expected %d tables in public, found %d: %v", ChinookTables, len(counts), counts)
	}
	for table, rows := range counts {
		if rows == 0 {
			return fmt.Errorf("table %s is empty", table)
		}
	}
	return nil
}

// chinookCounts returns the row count of every table in schema public.
func chinookCounts(ctx context.Context, t testing.TB, n *Node, db string) (map[string]int64, error) {
	pool := n.Pool(t, db)
	rows, err := pool.Query(ctx, `SELECT c.relname FROM pg_catalog.pg_class c
		JOIN pg_catalog.pg_namespace s ON s.oid = c.relnamespace
		WHERE s.nspname = 'public' AND c.relkind = 'r'`)
	if err != nil {
		return nil, fmt.Errorf("list tables: %w", err)
	}
	var tables []string
	for rows.Next() {
		var name string
		if err := rows.Scan(&name); err != nil {
			return nil, fmt.Errorf("list tables: %w", err)
		}
		tables = append(tables, name)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list tables: %w", err)
	}
	counts := make(map[string]int64, len(tables))
	for _, table := range tables {
		var c int64
		q := "SELECT count(*) FROM " + quoteTable("public", table)
		if err := pool.QueryRow(ctx, q).Scan(&c); err != nil {
			return nil, fmt.Errorf("count %s: %w", table, err)
		}
		counts[table] = c
	}
	return counts, nil
}
