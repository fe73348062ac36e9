package tests

import (
	"os"
	"strconv"
	"testing"
	"time"
)

// requireSoak skips t unless STEEP_SOAK=1: soak tests run for minutes (make soak), never in make test.
func requireSoak(t *testing.T) {
	t.Helper()
	if os.Getenv("STEEP_SOAK") != "1" {
		t.Skip("soak: run with make soak")
	}
}

// soakDuration is how long a soak test keeps its load running: STEEP_SOAK_MINUTES (default 20).
func soakDuration() time.Duration {
	if v, err := strconv.Atoi(os.Getenv("STEEP_SOAK_MINUTES")); err == nil && v > 0 {
		return time.Duration(v) * time.Minute
	}
	return 20 * time.Minute
}
