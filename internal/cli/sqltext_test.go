package cli

import (
	"testing"

	"github.com/steepdb/steep_repl/internal/progress"
)

func TestSQLSafeRewritesControlCharactersSoTheSQLMeansTheSame(t *testing.T) {
	for in, want := range map[string]string{
		"CREATE TABLE public.orders (id integer);\n":                   "CREATE TABLE public.orders (id integer);\n",
		"CREATE TABLE public.\"\x1b]0;PWNED\x07\x1b[2J\" (id int);":    `CREATE TABLE public.U&"\001B]0;PWNED\0007\001B[2J" (id int);`,
		`CREATE TABLE "a\b` + "\x1b" + `""c" (x int)`:                  `CREATE TABLE U&"a\\b\001B""c" (x int)`,
		"CREATE TABLE \"new\nline\" ()":                                `CREATE TABLE U&"new\000Aline" ()`,
		"ALTER TABLE t ALTER c SET DEFAULT 'it''s\x1b[31m\\red'::text": `ALTER TABLE t ALTER c SET DEFAULT U&'it''s\001B[31m\\red'::text`,
		"SELECT 'multi\nline', E'esc\x07\\'q'":                         "SELECT 'multi\nline', E'esc\\x07\\'q'",
		"SELECT U&'\\0041\x1b'":                                        `SELECT U&'\0041\001B'`,
		"SELECT $$a\x1bb's$$, $t$ok$t$":                                `SELECT U&'a\001Bb''s', $t$ok$t$`,
		"SELECT $1, a$b FROM t":                                        "SELECT $1, a$b FROM t",
		"-- note \x1b[2J\nSELECT 1 /* c \u009b */":                     "-- note \\x1b[2J\nSELECT 1 /* c \\u009b */",
		"SELECT 1\r\n":                 "SELECT 1 \n",
		"DEL \"x\x7f\" C1 \"y\u0085\"": `DEL U&"x\007F" C1 U&"y\0085"`,
		"SELECT \"unclosed\x1b":        `SELECT "unclosed\x1b`,
	} {
		got := sqlSafe(in)
		if got != want {
			t.Errorf("sqlSafe(%q)\n got %q\nwant %q", in, got, want)
		}
		if !progress.Safe(got) {
			t.Errorf("sqlSafe(%q) = %q still holds control characters", in, got)
		}
	}
}
