package cli

import (
	"flag"
	"io"
	"testing"
	"time"
)

func TestJobTimeLimitFlag(t *testing.T) {
	var l timeLimits
	fs := flag.NewFlagSet("run", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	fs.Var(&l, "job-time-limit", timeLimitsHelp)
	if err := fs.Parse([]string{"--job-time-limit", "48h", "--job-time-limit", "sleep=2s", "--job-time-limit", "noop=0"}); err != nil {
		t.Fatal(err)
	}
	if l.all != 48*time.Hour || l.byKind["sleep"] != 2*time.Second || l.byKind["noop"] != 0 || len(l.byKind) != 2 {
		t.Fatalf("parsed %+v", l)
	}
	if err := l.Set("0"); err != nil || l.all >= 0 {
		t.Fatalf("0 is no limit: %v, %s", err, l.all)
	}
	for _, bad := range []string{"", "5x", "-1s", "sleep=", "sleep=soon"} {
		if err := l.Set(bad); err == nil {
			t.Errorf("--job-time-limit %q was accepted", bad)
		}
	}
	if n, err := controlSlots(0); err != nil || n >= 0 {
		t.Fatalf("--control-concurrency 0: %d, %v", n, err)
	}
	if _, err := controlSlots(-1); err == nil {
		t.Fatal("--control-concurrency -1 was accepted")
	}
}
