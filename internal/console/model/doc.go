// Package model is the console's data layer: pollers that read each node's database and a
// merge of their readings into the State the UI draws.
//
// One endpoint (goroutine and connection) per node: the nodes given with --db, and the nodes
// their registries name when the session may read their conninfo (superusers). An endpoint
// LISTENs on steep_repl_events and steep_repl_progress (snapshot progress, written at least
// every 500 ms while a snapshot job runs) and polls at once on a notification, else every
// second while an init or a snapshot job is under way and every two seconds otherwise; its
// polls never overlap. A node whose extension predates snapshots (no steep_repl.snapshots)
// is read without them and said to have no snapshot support. A node that
// does not answer is reported unreachable and retried with a doubling backoff. After every
// poll the Model merges all readings (Merge, a pure function) and hands a copy of the State
// to the UI; the UI never touches a connection. Passwords never leave the connection configs.
package model
