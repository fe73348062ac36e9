package tests

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/jackc/pgx/v5"

	"github.com/steepdb/steep_repl/internal/progress"
	"github.com/steepdb/steep_repl/tests/harness"
)

// evilName retitles the terminal, clears the screen and turns the text red when printed raw.
const evilName = "\x1b]0;PWNED\x07\x1b[2J\x1b[31mEVIL"

// evilText is evilName without its ";" (schema sync auto refuses a default with one).
const evilText = "\x1b[2J\x1b[31mRED\x07\u009b"

// c1Name holds a C1 CSI (U+009B, a whole escape sequence's start in one character) and DEL.
const c1Name = "c1\u009b2J\x7fdel"

// assertNoControlChars fails when out holds a byte below 0x20 other than newline and tab,
// DEL, a C1 control (U+0080..U+009F) or a byte that is not UTF-8.
func assertNoControlChars(t *testing.T, what, out string) {
	t.Helper()
	for i := 0; i < len(out); {
		r, size := utf8.DecodeRuneInString(out[i:])
		bad := r < 0x20 && r != '\n' && r != '\t' || r == 0x7f || r >= 0x80 && r <= 0x9f || r == utf8.RuneError && size == 1
		if bad {
			from := max(0, i-40)
			t.Fatalf("%s printed a raw control character %U at byte %d: %q", what, r, i, out[from:min(len(out), i+40)])
		}
		i += size
	}
}

// cli runs steep-repl and checks its stdout and stderr for raw control characters.
func cliClean(t *testing.T, args ...string) (stdout, stderr string, code int) {
	t.Helper()
	stdout, stderr, code = runCLI(t, args...)
	what := "steep-repl " + strings.Join(args[:min(2, len(args))], " ")
	assertNoControlChars(t, what+" (stdout)", stdout)
	assertNoControlChars(t, what+" (stderr)", stderr)
	return stdout, stderr, code
}

func ident(parts ...string) string { return pgx.Identifier(parts).Sanitize() }

// Every CLI command that prints names, paths or server messages, run on objects named with
// escape sequences: nothing reaches the terminal raw, names are quoted as format('%I.%I'),
// JSON stays valid and carries the real names, and exported DDL still creates the same tables.
func TestCLIControlCharactersNeverReachTheTerminal(t *testing.T) {
	scenario(t)
	t.Parallel()
	a, b := setupEmptyPair(t)
	evilTable := ident("public", evilName)
	evilSchema := ident(evilName)
	ddl := fmt.Sprintf(`CREATE SCHEMA "we.ird"; CREATE SCHEMA we; CREATE SCHEMA %s;
		CREATE TABLE "we.ird".t (id int PRIMARY KEY);
		CREATE TABLE we."ird.t" (id int PRIMARY KEY);
		CREATE TABLE %s.%s (id int PRIMARY KEY, %s text DEFAULT 'dflt%s');
		CREATE TABLE %s (id int PRIMARY KEY, note text)`,
		evilSchema, evilSchema, ident(c1Name), ident(evilName), evilText, evilTable)
	a.Exec(t, "", ddl)
	a.Exec(t, "", fmt.Sprintf("ALTER TABLE %s ADD COLUMN %s text DEFAULT 'x%s'", evilTable, ident("col"+evilName), evilText))
	a.Exec(t, "", fmt.Sprintf(`INSERT INTO "we.ird".t SELECT generate_series(1, 10); INSERT INTO %s (id) SELECT generate_series(1, 10);
		ANALYZE`, evilTable))
	b.Exec(t, "", fmt.Sprintf("CREATE TABLE %s (id int PRIMARY KEY, note text)", evilTable))

	// progress.Ident quotes as the server's format('%I.%I') does.
	for _, p := range [][2]string{{"public", "orders"}, {"we.ird", "t"}, {"we", "ird.t"}, {"public", "Order Items"},
		{"public", "select"}, {"public", "name"}, {"public", "user"}, {"s", `say "hi"`}, {evilName, c1Name}, {"public", "été"}} {
		server := harness.QueryOne[string](t, a, "", "SELECT format('%I.%I', $1::text, $2::text)", p[0], p[1])
		if got := progress.Ident(p[0], p[1]); got != progress.Escape(server) {
			t.Errorf("Ident(%q, %q) = %s, server's format('%%I.%%I') gives %s", p[0], p[1], got, progress.Escape(server))
		}
	}

	dbB := dbaURL(t, b)
	wantNames := []string{`"we.ird".t`, `we."ird.t"`, progress.Ident("public", evilName), progress.Ident(evilName, c1Name)}

	// Schema commands.
	out, errOut, code := cliClean(t, "schema", "capture", "--db", dbB, "--list")
	if code != 0 || !strings.Contains(out, progress.Ident("public", evilName)) {
		t.Fatalf("schema capture: exit %d\n%s%s", code, out, errOut)
	}
	out, errOut, code = cliClean(t, "schema", "compare", "--peer", "node_a", "--all", "--db", dbB)
	for _, n := range wantNames {
		if !strings.Contains(out, n) {
			t.Errorf("schema compare does not show %s:\n%s", n, out)
		}
	}
	if code != 1 || !strings.Contains(out, "1 MISMATCH, 3 REMOTE_ONLY") {
		t.Fatalf("schema compare: exit %d\n%s%s", code, out, errOut)
	}
	out, _, _ = cliClean(t, "schema", "compare", "--peer", "node_a", "--db", dbB, "--json")
	var rows []struct{ Schema, Table string }
	if err := json.Unmarshal([]byte(out), &rows); err != nil || len(rows) != 4 {
		t.Fatalf("schema compare --json: %v\n%s", err, out)
	}
	found := false
	for _, r := range rows {
		found = found || r.Schema == evilName && r.Table == c1Name
	}
	if !found {
		t.Fatalf("schema compare --json lost the real names: %+v", rows)
	}
	out, errOut, code = cliClean(t, "schema", "diff", "--peer", "node_a", "--db", dbB)
	if code != 1 || !strings.Contains(out, progress.Escape("col"+evilName)) {
		t.Fatalf("schema diff: exit %d\n%s%s", code, out, errOut)
	}
	cliClean(t, "schema", "diff", "--peer", "node_a", "--db", dbB, "--json")
	cliClean(t, "schema", "diff", "--peer", "node_a", "--schema", evilName, "--table", c1Name, "--db", dbB)

	// Exported DDL prints safely and still creates the same tables (checked in a scratch database).
	// (pg_dump of node_a itself as its superuser: --peer reads a conninfo, which needs one,
	// and pg_dump locks every table it dumps.)
	bindir, err := harness.BinDir()
	if err != nil {
		t.Fatal(err)
	}
	script, errOut, code := cliClean(t, "schema", "export", "--output", "-", "--pg-bindir", bindir, "--db", a.ConnString(""))
	if code != 0 || !strings.Contains(script, `U&"`) {
		t.Fatalf("schema export: exit %d\n%s%s", code, script, errOut)
	}
	scriptFile := filepath.Join(t.TempDir(), "schema.sql")
	if err := os.WriteFile(scriptFile, []byte(script), 0o600); err != nil {
		t.Fatal(err)
	}
	b.CreateDatabase(t, "ddlcheck")
	b.RunClient(t, "ddlcheck", "psql", "-X", "-q", "-v", "ON_ERROR_STOP=1", "-f", scriptFile)
	columns := `SELECT string_agg(format('%I.%I.%I %s %s', table_schema, table_name, column_name, data_type, column_default), ', '
		ORDER BY table_schema, table_name, ordinal_position) FROM information_schema.columns
		WHERE table_schema NOT IN ('pg_catalog', 'information_schema', 'steep_repl')`
	if got, want := harness.QueryOne[string](t, b, "ddlcheck", columns), harness.QueryOne[string](t, a, "", columns); got != want {
		t.Fatalf("the exported DDL made other tables:\n got %q\nwant %q", got, want)
	}

	out, errOut, code = cliClean(t, "schema", "sync", "--peer", "node_a", "--mode", "auto", "--db", dbB)
	if code != 0 || !strings.Contains(out, "now matches node node_a") {
		t.Fatalf("schema sync: exit %d\n%s%s", code, out, errOut)
	}
	if out, errOut, code = cliClean(t, "schema", "compare", "--peer", "node_a", "--db", dbB); code != 0 {
		t.Fatalf("schema compare after the sync: exit %d\n%s%s", code, out, errOut)
	}

	// An init of these tables: its progress lines, status table and JSON.
	startSidecar(t, b, "sidecar_b")
	out, errOut, code = cliClean(t, "init", "node_b", "--from", "node_a", "--db", dbB, "--follow", "--timeout", "90s", "--no-color")
	if code != 0 {
		t.Fatalf("init --follow: exit %d\n%s%s", code, out, errOut)
	}
	out, errOut, code = cliClean(t, "init", "status", "node_b", "--db", dbB, "--no-color")
	for _, n := range wantNames {
		if !strings.Contains(out, n) {
			t.Errorf("init status does not show %s:\n%s", n, out)
		}
	}
	if code != 0 {
		t.Fatalf("init status: exit %d\n%s%s", code, out, errOut)
	}
	cliClean(t, "init", "status", "node_b", "--db", dbB, "--json")
	cliClean(t, "node", "list", "--db", dbB)

	// Drift on the evil names.
	a.Exec(t, "", fmt.Sprintf("ALTER TABLE %s.%s ADD COLUMN %s int", evilSchema, ident(c1Name), ident("new"+evilName)))
	out, errOut, _ = cliClean(t, "schema", "drift", "--db", dbB)
	if !strings.Contains(out+errOut, progress.Escape("new"+evilName)) {
		t.Fatalf("schema drift does not name the new column:\n%s%s", out, errOut)
	}
	cliClean(t, "schema", "drift", "--db", dbB, "--json")
	cliClean(t, "node", "list", "--db", dbB) // last error: the drift, with the names

	// A snapshot into a directory named with escape sequences, generated by the superuser (it
	// names a directory without a snapshot root). Only the schemas whose table files cannot
	// collide: the generator names "we.ird".t's and we."ird.t"'s files alike (not the CLI's part).
	startSidecar(t, a, "sidecar_a")
	dir := filepath.Join(t.TempDir(), "snap"+evilName+c1Name)
	out, errOut, code = cliClean(t, "snapshot", "generate", "--db", a.ConnString(""), "--output", dir, "--compression", "none",
		"--parallel", "1", "--schemas", "public,"+evilName)
	if code != 0 || !strings.Contains(out, progress.Escape(dir)) {
		t.Fatalf("snapshot generate: exit %d\n%s%s", code, out, errOut)
	}
	dbA := dbaURL(t, a)
	out, errOut, code = cliClean(t, "snapshot", "list", "--db", dbA)
	if code != 0 || !strings.Contains(out, progress.Escape(dir)) {
		t.Fatalf("snapshot list: exit %d\n%s%s", code, out, errOut)
	}
	out, _, _ = cliClean(t, "snapshot", "list", "--db", dbA, "--json")
	var snaps []struct {
		Path string `json:"path"`
	}
	if err := json.Unmarshal([]byte(out), &snaps); err != nil || len(snaps) != 1 || snaps[0].Path != dir {
		t.Fatalf("snapshot list --json: %v %+v\n%s", err, snaps, out)
	}
	// The snapshot applied from a missing directory: the job's error names the path.
	_, _, code = cliClean(t, "snapshot", "apply", "--db", a.ConnString(""), "--input", dir+"-missing"+evilName, "--quiet")
	if code == 0 {
		t.Fatal("snapshot apply of a missing directory succeeded")
	}
	cliClean(t, "snapshot", "list", "--db", dbA)
	out, errOut, code = cliClean(t, "job", "list", "--db", dbA)
	if code != 0 || !strings.Contains(out, "snapshot.generate") {
		t.Fatalf("job list: exit %d\n%s%s", code, out, errOut)
	}
	job := harness.QueryOne[int64](t, a, "", "SELECT max(id) FROM steep_repl.jobs WHERE kind = 'snapshot.generate'")
	out, _, _ = cliClean(t, "job", "show", fmt.Sprint(job), "--db", dbA)
	var shown struct {
		Args map[string]any `json:"args"`
	}
	if err := json.Unmarshal([]byte(out), &shown); err != nil {
		t.Fatalf("job show: %v\n%s", err, out)
	}

	// The user's own input, echoed in errors.
	cliClean(t, "snapshot", "delete", "snap"+evilName, "--db", dbA)
	cliClean(t, "init", "cancel", "node"+evilName, "--db", dbB)
	cliClean(t, "init", "status", "node"+c1Name, "--db", dbB)
	cliClean(t, "schema", "diff", "--peer", evilName, "--db", dbB)
	cliClean(t, "job", "enqueue", evilName, "--db", dbA)
	cliClean(t, "init", "node_b", "--from", "node_a", "--tables", evilName+"."+c1Name, "--db", dbB)
	cliClean(t, "nonsense"+evilName)
	cliClean(t, "init", "status", "--bogus"+evilName)
}
