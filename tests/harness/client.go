package harness

import (
	"context"
	"fmt"
	"net/url"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

// queryTimeout bounds each helper query so a stuck test fails instead of
// hanging until the go test timeout.
const queryTimeout = 5 * time.Minute

func dbName(db string) string {
	if db == "" {
		return "postgres"
	}
	return db
}

// ConnString returns the URL of database db ("" = postgres) on the node, as
// the superuser postgres over TCP.
func (n *Node) ConnString(db string) string {
	return n.ConnStringAs("postgres", db)
}

// ConnStringAs is ConnString for another LOGIN role (the cluster trusts local TCP).
func (n *Node) ConnStringAs(role, db string) string {
	return fmt.Sprintf("postgres://%s@127.0.0.1:%d/%s?sslmode=disable", url.PathEscape(role), n.Port, url.PathEscape(dbName(db)))
}

// Pool returns a connection pool to database db ("" = postgres) as the superuser,
// created on first use and cached; the node's cleanup closes it. It survives Stop,
// Crash and Restart: their connections are dropped and new ones made on demand.
func (n *Node) Pool(t testing.TB, db string) *pgxpool.Pool {
	t.Helper()
	return n.PoolAs(t, "postgres", db)
}

// PoolAs is Pool for another LOGIN role.
func (n *Node) PoolAs(t testing.TB, role, db string) *pgxpool.Pool {
	t.Helper()
	db = dbName(db)
	key := role + "@" + db
	n.mu.Lock()
	p := n.pools[key]
	n.mu.Unlock()
	if p != nil {
		return p
	}
	cfg, err := pgxpool.ParseConfig(n.ConnStringAs(role, db))
	if err != nil {
		t.Fatalf("node %s: pool for %s: %v", n.Name, db, err)
	}
	cfg.ConnConfig.ConnectTimeout = 10 * time.Second
	p, err = pgxpool.NewWithConfig(context.Background(), cfg)
	if err != nil {
		t.Fatalf("node %s: pool for %s: %v", n.Name, db, err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := p.Ping(ctx); err != nil {
		p.Close()
		t.Fatalf("node %s: connect to %s: %v", n.Name, db, err)
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	if old := n.pools[key]; old != nil { // another goroutine won the race
		p.Close()
		return old
	}
	n.pools[key] = p
	return p
}

// resetPools drops every pooled connection (after a stop, crash or restart).
func (n *Node) resetPools() {
	n.mu.Lock()
	defer n.mu.Unlock()
	for _, p := range n.pools {
		p.Reset()
	}
}

func (n *Node) closePools() {
	n.mu.Lock()
	pools := n.pools
	n.pools = map[string]*pgxpool.Pool{}
	n.mu.Unlock()
	for _, p := range pools {
		p.Close()
	}
}

// Exec runs sql (one or more statements when there are no args) in database
// db and fails the test with the SQL and the error if it fails.
func (n *Node) Exec(t testing.TB, db, sql string, args ...any) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), queryTimeout)
	defer cancel()
	if _, err := n.Pool(t, db).Exec(ctx, sql, args...); err != nil {
		t.Fatalf("node %s: exec in %s: %v\nSQL: %s", n.Name, dbName(db), err, sql)
	}
}

// QueryOne runs sql in database db on node n and returns the single value of
// its single row, failing the test on any error (including no rows).
func QueryOne[T any](t testing.TB, n *Node, db, sql string, args ...any) T {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), queryTimeout)
	defer cancel()
	var v T
	if err := n.Pool(t, db).QueryRow(ctx, sql, args...).Scan(&v); err != nil {
		t.Fatalf("node %s: query in %s: %v\nSQL: %s", n.Name, dbName(db), err, sql)
	}
	return v
}

// CreateDatabase creates database db on the node.
func (n *Node) CreateDatabase(t testing.TB, db string) {
	t.Helper()
	n.Exec(t, "", "CREATE DATABASE "+pgx.Identifier{db}.Sanitize())
}

// WaitFor polls cond every 50 ms until it returns true, failing the test with
// what when timeout passes first.
func (n *Node) WaitFor(t testing.TB, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("node %s: timed out after %s waiting for %s", n.Name, timeout, what)
		}
		<-tick.C
	}
}
