// Package manualinit runs the sidecar's part of a manual init from a logical dump: the
// init.export job creates the prepared slot over a replication connection that exports its
// snapshot, and holds that connection (and so the snapshot) open for pg_dump --snapshot
// until the DBA releases it or the hold ends.
package manualinit
