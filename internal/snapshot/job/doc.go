// Package job runs the sidecar's snapshot jobs on a node's host:
//
//   - snapshot.generate: a logical slot created over a replication connection exports the
//     snapshot every worker reads in (SET TRANSACTION SNAPSHOT); each table is streamed with
//     COPY ... TO STDOUT through a compressor into its file, hashed on the way; the schema is
//     taken with pg_dump --schema-only --format=custom --snapshot (generate_schema.go); the
//     manifest is written last. A resumed job continues while the exported snapshot still
//     lives, and otherwise restarts with a new slot, discarding the partial files.
//   - snapshot.apply: the manifest is validated; into a database without the snapshot's
//     tables the schema archive's pre-data section is restored with pg_restore first and its
//     post-data section after the load (apply_schema.go); each table is loaded in its own
//     transaction, its checksum verified before the commit, its completion recorded in that
//     same transaction; sequences are restored, and with subscribe the node subscribes from
//     the snapshot's LSN (nodeinit.SubscribeFromSnapshot). Programs finds pg_dump and pg_restore.
//   - for start_init's two_phase method (the snapshot.init job of package nodeinit), TwoPhase:
//     the source's generation mirrored as the job's progress, then the apply.
//   - snapshot.delete and snapshot.expire: remove files, drop the slot (and the publication
//     when no subscriber's slot is left).
//
// Progress goes to steep_repl.snapshot_progress every 500 ms (NOTIFY steep_repl_progress): the
// jobs report counts, the extension computes throughput and ETA (steep_repl._rate_eta).
// All SQL goes through package api; connection strings are never logged.
package job
