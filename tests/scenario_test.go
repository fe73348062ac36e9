package tests

import (
	"os"
	"testing"
)

// scenario marks a long end-to-end scenario: a fault, a console or CLI session followed to the
// end, a reinit under load. What it proves is the sidecar's and tick()'s behaviour, which does
// not change with the server's major; the server-facing steps it takes have shorter tests that
// run against every major. make test runs scenarios against its first major (18) only, so the
// suite stays inside its time budget; make test-all runs them against every major.
func scenario(t *testing.T) {
	t.Helper()
	if os.Getenv("STEEP_SCENARIOS") == "none" {
		t.Skip("long scenario: make test runs it against the first major only (make test-all runs it against every major)")
	}
}
