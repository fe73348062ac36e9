// Package tests holds the integration tests of steep_repl: every test starts real PostgreSQL
// clusters through package harness, installs the extension and drives it through its SQL API,
// the sidecar binary and the CLI. Nothing is mocked.
package tests
