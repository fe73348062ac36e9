package cli

import (
	"bytes"
	"context"
	"reflect"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5/pgconn"
)

func TestInterleaveTakesDashAndNegativeNumbersAsValues(t *testing.T) {
	for _, tt := range []struct{ in, want []string }{
		{[]string{"--output", "-", "--peer", "node_a"}, []string{"--output", "-", "--peer", "node_a"}},
		{[]string{"node_b", "--parallel", "-1"}, []string{"--parallel", "-1", "node_b"}},
		{[]string{"--limit", "-1.5", "x"}, []string{"--limit", "-1.5", "x"}},
		{[]string{"--reason", "--wait", "n"}, []string{"--reason", "--wait", "n"}},
		{[]string{"--wait", "n", "--", "-x"}, []string{"--wait", "n", "-x"}},
	} {
		if got := interleave(tt.in); !reflect.DeepEqual(got, tt.want) {
			t.Errorf("interleave(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

func TestCommandLineMistakesAreUsageErrorsNamingTheObject(t *testing.T) {
	for _, tt := range []struct {
		argv []string
		want string
	}{
		{[]string{"node", "list", "extra"}, `steep-repl node list: takes no arguments, not "extra"`},
		{[]string{"tick", "a", "b"}, `steep-repl tick: takes no arguments, not "a b"`},
		{[]string{"job", "list", "--state", "done"}, `unknown job state "done" (states: queued, running, succeeded, failed, cancelled)`},
		{[]string{"job", "list", "--limit", "0"}, "--limit must be at least 1, not 0"},
		{[]string{"job", "enqueue", "bogus"}, `unknown job kind "bogus": no sidecar would run it (kinds: init.cancel,`},
		{[]string{"job", "enqueue", "noop", "--args", "[1]"}, `--args must be a JSON object such as '{"seconds": 5}', not "[1]"`},
		{[]string{"job", "enqueue", "noop", "--args", "null"}, `--args must be a JSON object`},
		{[]string{"job", "enqueue", "noop", "--args", "{} {}"}, `--args must be a JSON object`},
		{[]string{"job", "enqueue", "noop", "--args", `{"a":`}, `--args "{\"a\":" is not valid JSON`},
		{[]string{"job", "enqueue", "noop", "--max-attempts", "0"}, "--max-attempts must be at least 1, not 0"},
		{[]string{"job", "show", "x"}, `job ID must be a positive integer, not "x"`},
		{[]string{"node", "list", "--db", "notaurl:/x"}, "--db is neither a postgres:// URL nor a key=value conninfo"},
	} {
		var stdout, stderr bytes.Buffer
		code := Main(context.Background(), tt.argv, &stdout, &stderr)
		if code != 2 || !strings.Contains(stderr.String(), tt.want) {
			t.Errorf("%q: exit %d, stderr %q; want 2 and %q", tt.argv, code, stderr.String(), tt.want)
		}
		if strings.Contains(stderr.String(), "usage: steep-repl "+tt.argv[0]) && strings.Contains(stderr.String(), " \n\n") {
			t.Errorf("%q: the usage line ends with a space:\n%s", tt.argv, stderr.String())
		}
	}
}

func TestPrintErrorHintsAtAMissingExtension(t *testing.T) {
	for _, tt := range []struct {
		err  *pgconn.PgError
		hint bool
	}{
		{&pgconn.PgError{Code: "42P01", Message: `relation "steep_repl.nodes" does not exist`}, true},
		{&pgconn.PgError{Code: "3F000", Message: `schema "steep_repl" does not exist`}, true},
		{&pgconn.PgError{Code: "42883", Message: "function steep_repl.list_snapshots() does not exist"}, true},
		{&pgconn.PgError{Code: "42P01", Message: `relation "public.album" does not exist`}, false},
		{&pgconn.PgError{Code: "42704", Message: `node "steep_repl" is not registered`}, false},
		{&pgconn.PgError{Code: "42P01", Message: `relation "steep_repl.x" does not exist`, Hint: "its own"}, false},
	} {
		var b bytes.Buffer
		printError(&b, "node list", tt.err)
		if got := strings.Contains(b.String(), "CREATE EXTENSION steep_repl"); got != tt.hint {
			t.Errorf("%s %q: extension hint %v, want %v:\n%s", tt.err.Code, tt.err.Message, got, tt.hint, b.String())
		}
	}
}
