package model

import (
	"strings"
	"testing"

	"github.com/steepdb/steep_repl/internal/api"
)

func TestDutiesOfLiveReadingsAreMergedFailingFirst(t *testing.T) {
	rs := pairReadings()
	rs[0].Duties = []api.Duty{{Name: "reap_leases", LastOK: ptr(t0)}, {Name: "inits", Failures: 2, LastError: ptr("boom")}}
	rs[1].Duties = []api.Duty{{Name: "drift", Failures: 1, LastError: ptr("bang")}, {Name: "expire_slots"}}
	st := Merge(rs, "", true, t0)
	var got []string
	for _, d := range st.Duties {
		got = append(got, d.Node+"/"+d.Name)
	}
	if strings.Join(got, " ") != "node_a/drift node_b/inits node_a/expire_slots node_b/reap_leases" {
		t.Fatalf("duties %v", got)
	}
	if f := st.FailingDuties(); len(f) != 2 || f[1].Name != "inits" {
		t.Fatalf("failing duties %+v", f)
	}

	rs[1].Link, rs[1].Stale = LinkUnreachable, true // node_a is down: what it said last is not shown as live
	st = Merge(rs, "", true, t0)
	if len(st.Duties) != 2 || st.Duties[0].Node != "node_b" {
		t.Fatalf("duties of an unreachable node were kept: %+v", st.Duties)
	}
}

func TestDutyErrorsLoseEveryPasswordTheConsoleKnowsOrSees(t *testing.T) {
	cases := map[string]string{
		"could not connect: host=a password=s3cret user=x": "could not connect: host=a password=**** user=x",
		"host=a PASSWORD = 'se cr\\'et' user=x":            "host=a PASSWORD = **** user=x",
		"dial postgres://bob:hunter2@db:5432/app failed":   "dial postgres://bob:****@db:5432/app failed",
		"the seed's own password known-pw leaked":          "the seed's own password **** leaked",
		"no secret here (SQLSTATE 42501)":                  "no secret here (SQLSTATE 42501)",
	}
	for in, want := range cases {
		if got := redactPasswords(in, []string{"known-pw", ""}); got != want {
			t.Errorf("redactPasswords(%q) = %q, want %q", in, got, want)
		}
	}
}
