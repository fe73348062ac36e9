package pgtools

import (
	"strings"
	"testing"

	"github.com/jackc/pgx/v5/pgconn"
)

func TestParseProgramVersion(t *testing.T) {
	for out, want := range map[string]int{
		"pg_dump (PostgreSQL) 18.6\n":                  18,
		"pg_restore (PostgreSQL) 17.2 (Debian 17.2-1)": 17,
		"pg_dump (PostgreSQL) 19devel":                 19,
	} {
		_, major, err := ParseVersion(out)
		if err != nil || major != want {
			t.Errorf("%q: %d, %v (want %d)", out, major, err, want)
		}
	}
	if _, _, err := ParseVersion("something else 18"); err == nil {
		t.Error("unexpected output accepted")
	}
}

func TestLibpqEnvCarriesThePasswordOnlyInPGPASSWORD(t *testing.T) {
	cfg, err := pgconn.ParseConfig("postgres://alice:s3cret@db.example:5433/app?sslmode=disable")
	if err != nil {
		t.Fatal(err)
	}
	env := strings.Join(LibpqEnv(cfg, "x"), "\n")
	for _, want := range []string{"PGHOST=db.example", "PGPORT=5433", "PGUSER=alice", "PGDATABASE=app", "PGSSLMODE=disable", "PGPASSWORD=s3cret"} {
		if !strings.Contains(env, want) {
			t.Errorf("env lacks %s", want)
		}
	}
	if DBNameArg(cfg.Database) != "dbname='app'" || DBNameArg(`a'b\c`) != `dbname='a\'b\\c'` {
		t.Errorf("dbnameArg: %s", DBNameArg(`a'b\c`))
	}
	for mode, want := range map[string]string{"prefer": "prefer", "require": "require", "verify-full": "verify-full", "disable": "disable"} {
		c, err := pgconn.ParseConfig("postgres://h/db?sslmode=" + mode)
		if err != nil {
			t.Fatal(err)
		}
		if got := SSLMode(c); got != want {
			t.Errorf("sslmode %s: %s", mode, got)
		}
	}
}

func TestNamePatternMatchesExactly(t *testing.T) {
	if got := NamePattern(`we"ird`, "a*b.c"); got != `"we""ird"."a*b.c"` {
		t.Fatal(got)
	}
}
