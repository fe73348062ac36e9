package api

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
)

// Read-only calls of the console (steep-console). Its SQL lives in console.sql.

// ServerInfo is what the console needs to know about a server before reading it.
type ServerInfo struct {
	// VersionNum is server_version_num, e.g. 180001.
	VersionNum int
	// HasExtension is true when steep_repl is installed in the database.
	HasExtension bool
	// CanReadConninfo is true when the session may read steep_repl.nodes.conninfo
	// (superusers only): the console can then connect to the other nodes itself.
	CanReadConninfo bool
	// HasSnapshots is true when the extension has snapshot support: steep_repl.snapshots,
	// steep_repl.snapshot_progress and steep_repl.list_snapshots() (an older extension has none).
	HasSnapshots bool
	// HasDuties is true when the extension records tick()'s duties (steep_repl.supervisor_duties).
	HasDuties bool
	// SnapshotRoot is the setting steep_repl.snapshot_root ("" when unset): every snapshot
	// directory of a non-superuser must be beneath it.
	SnapshotRoot string
}

// ConflictCountersMinVersion is the first server_version_num whose pg_stat_subscription_stats
// has the confl_* counters (PostgreSQL 18).
const ConflictCountersMinVersion = 180000

// ConflictTypes names the confl_* counters of pg_stat_subscription_stats (PostgreSQL 18), in
// the order of SubscriptionStats.Conflicts.
var ConflictTypes = []string{"insert_exists", "update_origin_differs", "update_exists", "update_missing",
	"delete_origin_differs", "delete_missing", "multiple_unique_conflicts"}

// IsDataConflict reports whether typ (one of ConflictTypes) counts conflicts of the data: a
// row that already exists (insert_exists, update_exists, multiple_unique_conflicts) or is
// missing (update_missing, delete_missing). update_origin_differs and delete_origin_differs
// are not: they count changes to rows last written by another replication origin, and
// PostgreSQL 18 counts one for every row the initial table sync copied (those rows carry the
// table-sync worker's origin) that the source updates or deletes, so they grow after every
// clean init.
func IsDataConflict(typ string) bool {
	switch typ {
	case "update_origin_differs", "delete_origin_differs":
		return false
	}
	return true
}

// DataConflicts sums the counters of counts (in the order of ConflictTypes) that are data
// conflicts (see IsDataConflict).
func DataConflicts(counts []int64) int64 {
	var sum int64
	for i, n := range counts {
		if i < len(ConflictTypes) && IsDataConflict(ConflictTypes[i]) {
			sum += n
		}
	}
	return sum
}

// GetServerInfo reads the server version and what the session may see.
func GetServerInfo(ctx context.Context, db DB) (ServerInfo, error) {
	var s ServerInfo
	if err := db.QueryRow(ctx, q(qConsoleServerInfo)).Scan(&s.VersionNum, &s.HasExtension, &s.CanReadConninfo,
		&s.HasSnapshots, &s.HasDuties, &s.SnapshotRoot); err != nil {
		return ServerInfo{}, fmt.Errorf("read server info: %w", err)
	}
	return s, nil
}

// NodeConninfos returns every registered node's conninfo by name. It holds passwords when
// the DBA put them there: never log or draw a value. Only superusers may call it.
func NodeConninfos(ctx context.Context, db DB) (map[string]string, error) {
	rows, err := db.Query(ctx, q(qConsoleNodeConninfos))
	if err != nil {
		return nil, fmt.Errorf("read node conninfos: %w", err)
	}
	defer rows.Close()
	out := map[string]string{}
	for rows.Next() {
		var name, conninfo string
		if err := rows.Scan(&name, &conninfo); err != nil {
			return nil, fmt.Errorf("read node conninfos: %w", err)
		}
		out[name] = conninfo
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("read node conninfos: %w", err)
	}
	return out, nil
}

// ListenEvents subscribes the connection to steep_repl_events (one NOTIFY per event row,
// state changes included).
func ListenEvents(ctx context.Context, db DB) error {
	if _, err := db.Exec(ctx, q(qConsoleListenEvents)); err != nil {
		return fmt.Errorf("listen on steep_repl_events: %w", err)
	}
	return nil
}

// ListenProgress subscribes the connection to steep_repl_progress (a NOTIFY per write of
// steep_repl.snapshot_progress: at least every 500 ms while a snapshot job runs). Like any
// channel it needs no extension.
func ListenProgress(ctx context.Context, db DB) error {
	if _, err := db.Exec(ctx, q(qConsoleListenProgress)); err != nil {
		return fmt.Errorf("listen on steep_repl_progress: %w", err)
	}
	return nil
}

// ListSnapshotProgress returns the steep_repl.snapshot_progress rows of the given snapshot
// jobs (the job_id column of ListSnapshots), by job id; a job without progress yet has none.
func ListSnapshotProgress(ctx context.Context, db DB, jobIDs []int64) ([]SnapshotProgress, error) {
	if len(jobIDs) == 0 {
		return nil, nil
	}
	var out []SnapshotProgress
	if err := queryJSON(ctx, db, &out, qConsoleSnapshotProgress, jobIDs); err != nil {
		return nil, fmt.Errorf("progress of snapshot jobs: %w", err)
	}
	return out, nil
}

// SubscriptionStats is one subscription of the database with its conflict counters.
type SubscriptionStats struct {
	Name     string
	SlotName *string
	Enabled  bool
	// Conflicts holds the confl_* counters in the order of ConflictTypes; nil before PostgreSQL 18.
	Conflicts []int64
}

// ListSubscriptionStats returns the database's subscriptions; with conflicts (PostgreSQL 18 and
// later, see ConflictCountersMinVersion) it also reads their confl_* counters.
func ListSubscriptionStats(ctx context.Context, db DB, conflicts bool) ([]SubscriptionStats, error) {
	query := qConsoleSubscriptions
	if conflicts {
		query = qConsoleSubscriptionsPG18
	}
	rows, err := db.Query(ctx, q(query))
	if err != nil {
		return nil, fmt.Errorf("list subscriptions: %w", err)
	}
	out, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (SubscriptionStats, error) {
		var s SubscriptionStats
		if !conflicts {
			err := row.Scan(&s.Name, &s.SlotName, &s.Enabled)
			return s, err
		}
		c := make([]int64, len(ConflictTypes))
		err := row.Scan(&s.Name, &s.SlotName, &s.Enabled, &c[0], &c[1], &c[2], &c[3], &c[4], &c[5], &c[6])
		s.Conflicts = c
		return s, err
	})
	if err != nil {
		return nil, fmt.Errorf("list subscriptions: %w", err)
	}
	return out, nil
}

// LogicalSlotLags returns, per logical replication slot of the server, the bytes of WAL
// written beyond its confirmed_flush_lsn (what its subscriber has yet to confirm).
func LogicalSlotLags(ctx context.Context, db DB) (map[string]int64, error) {
	rows, err := db.Query(ctx, q(qConsoleSlotLags))
	if err != nil {
		return nil, fmt.Errorf("read slot lag: %w", err)
	}
	defer rows.Close()
	out := map[string]int64{}
	for rows.Next() {
		var name string
		var lag int64
		if err := rows.Scan(&name, &lag); err != nil {
			return nil, fmt.Errorf("read slot lag: %w", err)
		}
		out[name] = lag
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("read slot lag: %w", err)
	}
	return out, nil
}

// InitSample is one row of steep_repl.init_samples.
type InitSample struct {
	At        time.Time
	RowsDone  int64
	BytesDone int64
}

// ListInitSamples returns node's progress samples of the last window before its newest one,
// oldest first.
func ListInitSamples(ctx context.Context, db DB, node string, window time.Duration) ([]InitSample, error) {
	rows, err := db.Query(ctx, q(qConsoleInitSamples), node, window.Seconds())
	if err != nil {
		return nil, fmt.Errorf("init samples of %s: %w", node, err)
	}
	out, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (InitSample, error) {
		var s InitSample
		err := row.Scan(&s.At, &s.RowsDone, &s.BytesDone)
		return s, err
	})
	if err != nil {
		return nil, fmt.Errorf("init samples of %s: %w", node, err)
	}
	return out, nil
}
