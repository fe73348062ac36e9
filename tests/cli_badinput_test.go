package tests

import (
	"strings"
	"testing"

	"github.com/steepdb/steep_repl/tests/harness"
)

// TestBadInputConninfoValuesAreRefused: libpq's parser checks a conninfo's syntax only, so
// check_conninfo also refuses what libpq would refuse at connection time: a port that is not
// an integer 1..65535 (each element of a multi-host list), as many ports as hosts, and a
// hostaddr that is not a numeric address. Valid forms (lists, URIs, IPv6) are accepted.
func TestBadInputConninfoValuesAreRefused(t *testing.T) {
	t.Parallel()
	n := setupNode(t)
	before := harness.QueryOne[string](t, n, "", snapshotStateSQL)
	for _, c := range []struct{ conninfo, code, msg string }{
		{"host=x port=notanumber", "22023", `invalid port "notanumber" in conninfo`},
		{"host=x port=0", "22023", `invalid port "0"`},
		{"host=x port=65536", "22023", `invalid port "65536"`},
		{"host=x port=5432abc", "22023", `invalid port "5432abc"`},
		{"host=x port='5 4'", "22023", `invalid port "5 4"`},
		{"host=x port=5432 port=abc", "22023", `invalid port "abc"`}, // the last value wins, as in libpq
		{"host=a,b port=5432,abc", "22023", `invalid port "abc"`},
		{"host=a,b,c port=5432,5433", "22023", "conninfo has 2 ports for 3 hosts"},
		{"hostaddr=notanip", "22023", `invalid hostaddr "notanip" in conninfo`},
		{"host=a,b hostaddr=10.0.0.2,db.example.com", "22023", `invalid hostaddr "db.example.com"`},
		{"host=a hostaddr=10.0.0.2,10.0.0.3", "22023", "the numbers of host names (1) and hostaddr values (2)"},
		{"postgresql://h:abc/db", "22023", `invalid port "abc"`},
		{"postgresql://h1:5432,h2:x/db", "22023", `invalid port "x"`},
		{"postgresql://[::1]:99999/db", "22023", `invalid port "99999"`},
		{"postgresql://u@h:5432/db?port=nope", "22023", `invalid port "nope"`},
		{"postgres://h/db?hostaddr=bad", "22023", `invalid hostaddr "bad"`},
	} {
		code, pgErr := sqlState(t, n, "SELECT steep_repl.register_node('node_c', $1, false)", c.conninfo)
		if code != c.code || !strings.Contains(pgErr.Message, c.msg) {
			t.Errorf("%s: SQLSTATE %q %v, want %s %q", c.conninfo, code, pgErr, c.code, c.msg)
		}
	}
	if after := harness.QueryOne[string](t, n, "", snapshotStateSQL); after != before {
		t.Fatal("a refused conninfo changed the state")
	}
	for _, ok := range []string{
		"host=x port=65535", "host=x port=' 5432 '", "host=a,b port=5432", "host=a,b port=5432,5433",
		"host=a,b port=5432,", "host=a port=''", "hostaddr=10.0.0.2", "hostaddr=::1", "host=a,b hostaddr=10.0.0.2,::1",
		"postgresql://h:5432/db", "postgresql://h1:5432,h2/db", "postgresql://[::1]:5432/db",
		"postgresql://h1,h2,h3:5432/db", "postgres://h:%35%34%33%32/db", "postgresql://u@h/db?port=5433&hostaddr=10.0.0.9",
	} {
		if code, pgErr := sqlState(t, n, "SELECT steep_repl.check_conninfo($1)", ok); code != "" {
			t.Errorf("%s refused: %v", ok, pgErr)
		}
	}
}

// TestCLIBadInputNamesTheObject tries the CLI as a new user would: every mistake gets a
// sentence naming the object (no bare driver error), the exit status says whose mistake it
// was (2: the command line, 1: refused by the node), and nothing is stored.
func TestCLIBadInputNamesTheObject(t *testing.T) {
	t.Parallel()
	n := setupNode(t)
	db := n.ConnString("")
	before := harness.QueryOne[string](t, n, "", snapshotStateSQL)
	for _, c := range []struct {
		args []string
		code int
		want []string
	}{
		{[]string{"job", "show", "99999"}, 1, []string{"job 99999 does not exist", "SQLSTATE 42704"}},
		{[]string{"job", "cancel", "99999"}, 1, []string{"job 99999 does not exist", "SQLSTATE 42704"}},
		{[]string{"job", "show", "abc"}, 2, []string{`job ID must be a positive integer, not "abc"`}},
		{[]string{"node", "register", "node_x", "--conninfo", "host=x port=notanumber"}, 1,
			[]string{`invalid port "notanumber" in conninfo`, "SQLSTATE 22023"}},
		{[]string{"node", "register", "node_x", "--conninfo", "host=a,b port=5432,x"}, 1, []string{`invalid port "x"`}},
		{[]string{"node", "register", "node_x", "--conninfo", "hostaddr=db.example.com"}, 1,
			[]string{`invalid hostaddr "db.example.com"`}},
		{[]string{"job", "list", "--state", "bogus"}, 2, []string{`unknown job state "bogus"`, "queued, running"}},
		{[]string{"job", "list", "--limit", "-1"}, 2, []string{"--limit must be at least 1, not -1"}},
		{[]string{"job", "enqueue", "bogus"}, 2, []string{`unknown job kind "bogus"`, "noop", "sleep"}},
		{[]string{"job", "enqueue", "noop", "--args", "[1]"}, 2, []string{`--args must be a JSON object`, `not "[1]"`}},
		{[]string{"job", "enqueue", "noop", "--args", "{bad"}, 2, []string{`--args "{bad" is not valid JSON`}},
		{[]string{"node", "list", "extra"}, 2, []string{`takes no arguments, not "extra"`}},
		{[]string{"tick", "extra"}, 2, []string{`takes no arguments, not "extra"`}},
	} {
		out, errOut, code := runCLI(t, append(c.args, "--db", db)...)
		if code != c.code {
			t.Errorf("steep-repl %s: exit %d, want %d\nstdout: %s\nstderr: %s", strings.Join(c.args, " "), code, c.code, out, errOut)
			continue
		}
		for _, w := range c.want {
			if !strings.Contains(errOut, w) {
				t.Errorf("steep-repl %s: stderr lacks %q:\n%s", strings.Join(c.args, " "), w, errOut)
			}
		}
		if strings.Contains(errOut, "no rows in result set") || strings.Contains(errOut, "cannot unmarshal") {
			t.Errorf("steep-repl %s: a bare driver error:\n%s", strings.Join(c.args, " "), errOut)
		}
	}
	if after := harness.QueryOne[string](t, n, "", snapshotStateSQL); after != before {
		t.Fatal("bad input changed the state")
	}

	// --db names a database without the extension: the hint says what to do.
	n.CreateDatabase(t, "bare")
	_, errOut, code := runCLI(t, "node", "list", "--db", n.ConnString("bare"))
	if code != 1 || !strings.Contains(errOut, "CREATE EXTENSION steep_repl") {
		t.Errorf("node list on a database without the extension: exit %d\n%s", code, errOut)
	}
	// A --db that is no connection string is a command-line mistake naming --db.
	_, errOut, code = runCLI(t, "node", "list", "--db", "notaurl:/x")
	if code != 2 || !strings.Contains(errOut, "--db is neither a postgres:// URL nor a key=value conninfo") {
		t.Errorf("node list --db notaurl:/x: exit %d\n%s", code, errOut)
	}
}
