// Package nodeinit brings a node into the cluster: it runs the sidecar's part of every way a
// node gets its data and starts replicating, and holds the replication steps those ways
// share, so each is written once.
//
// The ways, as job handlers (Handlers):
//
//   - automatic init (init.start, init.cancel): the publication on the source, the
//     subscription on the target with copy_data = true; cancel drops the subscription, its
//     slots on the source and a publication the init created. Progress and the later state
//     changes are tick()'s work, in SQL.
//   - manual init from a logical dump (init.export): the prepared slot is created over a
//     replication connection that exports its snapshot, and held open for pg_dump --snapshot
//     until the DBA releases it or the hold ends.
//   - two-phase init (snapshot.init): the source's sidecar generates a snapshot into a shared
//     path, whose progress the target's job mirrors; the target applies it and subscribes
//     from its LSN. The snapshot files are package snapshot/job's work, passed in as
//     Config.Snapshots (that package imports this one for the publication and subscription).
//   - partial reinit (reinit.start, and init.cancel while REINITIALIZING): the tables in scope
//     leave the node's publication and subscription, are emptied as their owners (SQL), then
//     are published again and the subscription refreshed with copy_data = true, while every
//     other table keeps replicating; cancel leaves them out and empty, the node DIVERGED.
//
// The shared steps: the publication a node is initialized from (EnsurePublication, also used
// by snapshot generation), subscribing from a slot's LSN with the replication origin advanced
// to it (SubscribeFromSnapshot, and CheckSnapshotSlot before the load: snapshot apply with
// subscribe uses them), the slots an init leaves on the source, the connection to the
// source. Every statement is one of package api's verbs; no conninfo reaches a log or an
// error unredacted (dbconn.RedactError).
//
// Bidirectional merge and fast init will join this package, sharing the same steps.
package nodeinit
