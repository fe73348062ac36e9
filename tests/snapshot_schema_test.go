package tests

import (
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/steepdb/steep_repl/tests/harness"
)

// schemaFixture is a schema nobody tuned for steep_repl: types of every kind, a partitioned
// table with a default partition, a trigger and its function, views, a policy, generated and
// identity columns, an exclusion constraint, comments and a sequence owned by a column.
const schemaFixture = `
CREATE SCHEMA shop;
COMMENT ON SCHEMA shop IS 'the fixture''s schema';
CREATE DOMAIN shop.year AS integer CHECK (VALUE BETWEEN 1900 AND 2200);
CREATE TYPE shop.mood AS ENUM ('sad', 'ok', 'happy');
CREATE TYPE shop.address AS (street text, city text, zip text);
CREATE TYPE shop.floatrange AS RANGE (subtype = float8, subtype_diff = float8mi);
CREATE FUNCTION shop.is_positive(numeric) RETURNS boolean LANGUAGE sql IMMUTABLE AS 'SELECT $1 >= 0';

CREATE TABLE shop.customer (
  id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  name text NOT NULL,
  mood shop.mood NOT NULL DEFAULT 'ok',
  home shop.address,
  since shop.year,
  name_upper text GENERATED ALWAYS AS (upper(name)) STORED
);
COMMENT ON TABLE shop.customer IS 'people who buy';
COMMENT ON COLUMN shop.customer.mood IS 'how they feel';

CREATE SEQUENCE shop.invoice_no START 1000;
CREATE TABLE shop.invoice (
  no integer NOT NULL DEFAULT nextval('shop.invoice_no') PRIMARY KEY,
  customer_id bigint NOT NULL REFERENCES shop.customer (id),
  total numeric(12,2) NOT NULL CHECK (shop.is_positive(total)),
  updated_at timestamptz
);
ALTER SEQUENCE shop.invoice_no OWNED BY shop.invoice.no;
CREATE INDEX invoice_customer ON shop.invoice (customer_id);
CREATE FUNCTION shop.touch() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN NEW.updated_at := '2025-06-01 12:00+00'; RETURN NEW; END $$;
CREATE TRIGGER invoice_touch BEFORE UPDATE ON shop.invoice FOR EACH ROW EXECUTE FUNCTION shop.touch();
ALTER TABLE shop.invoice ENABLE ROW LEVEL SECURITY;
CREATE POLICY invoice_positive ON shop.invoice USING (total >= 0);

CREATE TABLE shop.sale (id bigserial, sold_on date NOT NULL, amount numeric NOT NULL, customer_id bigint REFERENCES shop.customer (id),
  PRIMARY KEY (id, sold_on)) PARTITION BY RANGE (sold_on);
CREATE TABLE shop.sale_2024 PARTITION OF shop.sale FOR VALUES FROM ('2024-01-01') TO ('2025-01-01');
CREATE TABLE shop.sale_2025 PARTITION OF shop.sale FOR VALUES FROM ('2025-01-01') TO ('2026-01-01');
CREATE TABLE shop.sale_2026 PARTITION OF shop.sale FOR VALUES FROM ('2026-01-01') TO ('2027-01-01');
CREATE TABLE shop.sale_other PARTITION OF shop.sale DEFAULT;
CREATE INDEX sale_amount ON shop.sale (amount);

CREATE TABLE shop.booking (
  id integer PRIMARY KEY,
  room integer NOT NULL,
  during tstzrange NOT NULL,
  temp shop.floatrange,
  CONSTRAINT no_overlap EXCLUDE USING gist (during WITH &&)
);

CREATE VIEW shop.big_invoice AS SELECT no, total FROM shop.invoice WHERE total > 100;
COMMENT ON VIEW shop.big_invoice IS 'invoices over 100';
CREATE MATERIALIZED VIEW shop.sales_by_year AS
  SELECT extract(year FROM sold_on)::integer AS year, sum(amount) AS total, count(*) AS n FROM shop.sale GROUP BY 1;
CREATE UNIQUE INDEX sales_by_year_year ON shop.sales_by_year (year);

INSERT INTO shop.customer (name, mood, home, since)
  SELECT 'customer ' || i, (ARRAY['sad', 'ok', 'happy'])[1 + i % 3]::shop.mood,
         ROW('street ' || i, 'city ' || (i % 7), lpad(i::text, 5, '0'))::shop.address, 1950 + i % 70
  FROM generate_series(1, 200) i;
INSERT INTO shop.invoice (customer_id, total) SELECT 1 + i % 200, (i * 7 % 500)::numeric / 2 FROM generate_series(1, 500) i;
UPDATE shop.invoice SET total = total + 1 WHERE no % 10 = 0;
INSERT INTO shop.sale (sold_on, amount, customer_id)
  SELECT date '2024-01-01' + (i * 3 % 1200), i % 97, 1 + i % 200 FROM generate_series(1, 1000) i;
INSERT INTO shop.sale (sold_on, amount) VALUES ('2031-05-05', 42);
INSERT INTO shop.booking
  SELECT i, i % 10, tstzrange(timestamptz '2025-01-01' + i * interval '1 day', timestamptz '2025-01-01' + (i + 1) * interval '1 day'),
         shop.floatrange(i, i + 0.5)
  FROM generate_series(1, 100) i;
REFRESH MATERIALIZED VIEW shop.sales_by_year;
`

// schemaDump is pg_dump --schema-only of n's database without its header, comments and
// pg_dump's per-run \restrict key (publications and subscriptions, the snapshot's
// replication machinery, left out).
func schemaDump(t *testing.T, n *harness.Node) string {
	t.Helper()
	out := n.RunClient(t, "", "pg_dump", "--schema-only", "--no-publications", "--no-subscriptions")
	var keep []string
	for _, line := range strings.Split(out, "\n") {
		if strings.TrimSpace(line) == "" || strings.HasPrefix(line, "--") || restrictLine.MatchString(line) {
			continue
		}
		keep = append(keep, line)
	}
	return strings.Join(keep, "\n")
}

var restrictLine = regexp.MustCompile(`^\\(un)?restrict `)

func TestSnapshotSchemaFixtureRoundTripsThroughPgDumpAndPgRestore(t *testing.T) {
	t.Parallel()
	a, b := setupEmptyPair(t)
	a.Exec(t, "", schemaFixture)
	a.Exec(t, "", "ANALYZE")
	startSidecar(t, a, "sidecar_a")
	startSidecar(t, b, "sidecar_b")
	dir := filepath.Join(t.TempDir(), "snap")

	generateSnapshot(t, a, dir, `{"compression": "lz4", "parallel": 2, "schemas": ["shop"]}`)
	m := readManifest(t, dir)
	if m.Schema == nil || m.Schema.File != "schema.dump" || m.Schema.PgDumpVersion != harness.ClientVersion(t, "pg_dump") {
		t.Fatalf("manifest's schema entry: %+v", m.Schema)
	}
	if len(m.Tables) != 7 { // customer, invoice, booking and the four leaves of sale
		t.Fatalf("manifest lists %d tables, want 7 (the leaf partitions, not their parent)", len(m.Tables))
	}
	if st, err := os.Stat(filepath.Join(dir, "schema.dump")); err != nil || st.Mode().Perm() != 0o600 || st.Size() != m.Schema.Bytes {
		t.Fatalf("schema archive: %v, %v", st, err)
	}

	applySnapshot(t, b, dir, `{"parallel": 3}`, "succeeded")
	da, db := schemaDump(t, a), schemaDump(t, b)
	if da != db {
		t.Fatalf("pg_dump --schema-only differs after the apply:\n--- source\n%s\n--- target\n%s", da, db)
	}
	for _, want := range []string{"CREATE DOMAIN shop.year", "CREATE TYPE shop.mood AS ENUM", "CREATE TYPE shop.address AS",
		"CREATE TYPE shop.floatrange AS RANGE", "ATTACH PARTITION shop.sale_other DEFAULT", "CREATE TRIGGER invoice_touch",
		"CREATE POLICY invoice_positive", "EXCLUDE USING gist", "CREATE MATERIALIZED VIEW shop.sales_by_year",
		"CREATE VIEW shop.big_invoice", "GENERATED ALWAYS AS (upper(name)) STORED", "GENERATED ALWAYS AS IDENTITY",
		"OWNED BY shop.invoice.no", "COMMENT ON COLUMN shop.customer.mood"} {
		if !strings.Contains(db, want) {
			t.Errorf("the target's schema lacks %q", want)
		}
	}
	harness.AssertEqual(t, a, b, "")
	if sa, sb := sequenceValues(t, a), sequenceValues(t, b); sa != sb || !strings.Contains(sa, "shop.invoice_no=1499") {
		t.Fatalf("sequences differ:\nsource %s\ntarget %s", sa, sb)
	}
	mv := "SELECT string_agg(format('%s %s %s', year, total, n), ',' ORDER BY year) FROM shop.sales_by_year"
	if va, vb := harness.QueryOne[string](t, a, "", mv), harness.QueryOne[string](t, b, "", mv); va != vb {
		t.Fatalf("materialized view differs:\nsource %s\ntarget %s", va, vb)
	}
	fps := harness.QueryOne[string](t, b, "", `SELECT coalesce(string_agg(format('%s.%s %s', schema_name, table_name, status), ', ' ORDER BY 1), '')
		FROM steep_repl.compare_fingerprints('node_a') WHERE status <> 'MATCH' AND schema_name = 'shop'`)
	if fps != "" {
		t.Fatalf("fingerprints after the apply: %s", fps)
	}
	// The restored schema works: the trigger fires, identity and the owned sequence go on, the
	// exclusion constraint and the partition bounds hold.
	b.Exec(t, "", "UPDATE shop.invoice SET total = 1 WHERE no = 1000")
	if got := harness.QueryOne[string](t, b, "", "SELECT updated_at::text FROM shop.invoice WHERE no = 1000"); got == "" {
		t.Fatal("the trigger did not fire on the target")
	}
	b.Exec(t, "", "INSERT INTO shop.customer (name) VALUES ('after')")
	b.Exec(t, "", "INSERT INTO shop.invoice (customer_id, total) VALUES (1, 5)")
	if got := harness.QueryOne[int64](t, b, "", "SELECT max(no) FROM shop.invoice"); got != 1500 {
		t.Fatalf("invoice_no went on at %d, want 1500", got)
	}
	if _, err := b.Pool(t, "").Exec(t.Context(), "INSERT INTO shop.booking VALUES (1000, 1, tstzrange('2025-01-02 06:00+00', '2025-01-02 07:00+00'))"); err == nil {
		t.Fatal("the exclusion constraint was not restored")
	}
	if got := harness.QueryOne[string](t, b, "", "SELECT tableoid::regclass::text FROM shop.sale WHERE sold_on = '2031-05-05'"); got != "shop.sale_other" {
		t.Fatalf("the default partition's row is in %s", got)
	}

	// A snapshot of the old manifest format (1: catalog-built DDL) is refused, saying so.
	m.FormatVersion = 1
	writeRawManifest(t, dir, m)
	job := applySnapshot(t, b, dir, `{"truncate": true}`, "failed")
	if msg := jobError(t, b, job); !strings.Contains(msg, "format version 1") || !strings.Contains(msg, "generate the snapshot again") {
		t.Fatalf("apply of a version 1 manifest: %s", msg)
	}
}

func TestSnapshotRefusesAPgDumpOlderThanTheServer(t *testing.T) {
	t.Parallel()
	a, _ := setupEmptyPair(t)
	a.Exec(t, "", "CREATE TABLE t (id int PRIMARY KEY)")
	fake := t.TempDir()
	script := "#!/bin/sh\necho 'pg_dump (PostgreSQL) 9.6.24'\nexit 0\n"
	if err := os.WriteFile(filepath.Join(fake, "pg_dump"), []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	startSidecar(t, a, "sidecar_a", "--pg-bindir", fake)
	id := harness.QueryOne[string](t, a, "", "SELECT steep_repl.generate_snapshot($1, $2)", filepath.Join(t.TempDir(), "snap"), `{}`)
	job := harness.QueryOne[int64](t, a, "", "SELECT job_id FROM steep_repl.snapshots WHERE id = $1", id)
	waitJobDone(t, a, job, "failed", 60*time.Second)
	server := harness.QueryOne[string](t, a, "", "SHOW server_version")
	if msg := jobError(t, a, job); !strings.Contains(msg, "9.6.24") || !strings.Contains(msg, server) {
		t.Fatalf("generation with pg_dump 9.6: %s", msg)
	}
}
