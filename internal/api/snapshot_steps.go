package api

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
)

// Sidecar steps of snapshot jobs.

// SnapshotRow is a row of steep_repl.snapshots, for the sidecar.
type SnapshotRow struct {
	ID               string         `json:"id"`
	Path             string         `json:"path"`
	State            string         `json:"state"`
	Options          map[string]any `json:"options"`
	Compression      string         `json:"compression"`
	Parallel         int            `json:"parallel"`
	SourceNode       string         `json:"source_node"`
	Publication      string         `json:"publication"`
	SlotName         string         `json:"slot_name"`
	JobID            *int64         `json:"job_id"`
	LSN              *string        `json:"lsn"`
	ExportedSnapshot *string        `json:"exported_snapshot"`
	SlotExpirySecs   int64          `json:"slot_expiry_s"`
	SlotExpiresAt    *time.Time     `json:"slot_expires_at"`
	SlotDroppedAt    *time.Time     `json:"slot_dropped_at"`
	Restarts         int            `json:"restarts"`
}

// Subscribable reports whether the snapshot keeps a slot and a publication for subscribers.
func (s *SnapshotRow) Subscribable() bool {
	v, ok := s.Options["subscribable"].(bool)
	return !ok || v
}

// GetSnapshot returns a generated snapshot's row, or nil.
func GetSnapshot(ctx context.Context, db DB, id string) (*SnapshotRow, error) {
	var s *SnapshotRow
	if err := queryJSON(ctx, db, &s, qGetSnapshot, id); err != nil {
		return nil, fmt.Errorf("snapshot %s: %w", id, err)
	}
	return s, nil
}

// ScopeTable is a table a snapshot covers (steep_repl._snapshot_scope).
type ScopeTable struct {
	Schema, Table string
	RelID         int64
	Bytes, Rows   int64
	Columns       []string
	Fingerprint   string
	IsPartition   bool
}

// SnapshotScope returns the tables a snapshot with these options covers, largest first
// (options is the jsonb of tables/schemas; "{}" is every user table).
func SnapshotScope(ctx context.Context, db DB, options any) ([]ScopeTable, error) {
	o, err := jsonArg(options)
	if err != nil {
		return nil, err
	}
	rows, err := db.Query(ctx, q(qSnapshotScope), o)
	if err != nil {
		return nil, fmt.Errorf("snapshot scope: %w", err)
	}
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (ScopeTable, error) {
		var t ScopeTable
		err := r.Scan(&t.Schema, &t.Table, &t.RelID, &t.Bytes, &t.Rows, &t.Columns, &t.Fingerprint, &t.IsPartition)
		return t, err
	})
	if err != nil {
		return nil, fmt.Errorf("snapshot scope: %w", err)
	}
	return out, nil
}

// SequenceDef is a sequence a snapshot carries; DDL is "" for identity sequences.
type SequenceDef struct{ Schema, Name, DDL, OwnedBy string }

// SnapshotSequences returns the sequences of a snapshot's scope.
func SnapshotSequences(ctx context.Context, db DB, options any) ([]SequenceDef, error) {
	o, err := jsonArg(options)
	if err != nil {
		return nil, err
	}
	rows, err := db.Query(ctx, q(qSnapshotSequences), o)
	if err != nil {
		return nil, fmt.Errorf("snapshot sequences: %w", err)
	}
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (SequenceDef, error) {
		var s SequenceDef
		var ddl, owned *string
		err := r.Scan(&s.Schema, &s.Name, &ddl, &owned)
		if ddl != nil {
			s.DDL = *ddl
		}
		if owned != nil {
			s.OwnedBy = *owned
		}
		return s, err
	})
	if err != nil {
		return nil, fmt.Errorf("snapshot sequences: %w", err)
	}
	return out, nil
}

// SnapshotServer describes the server a connection reaches.
type SnapshotServer struct {
	Version, Database, Encoding string
	VersionNum                  int
}

// GetSnapshotServer reads server_version(_num), the database and its encoding.
func GetSnapshotServer(ctx context.Context, db DB) (SnapshotServer, error) {
	var s SnapshotServer
	if err := db.QueryRow(ctx, q(qSnapshotServerVersion)).Scan(&s.Version, &s.VersionNum, &s.Database, &s.Encoding); err != nil {
		return s, fmt.Errorf("server version: %w", err)
	}
	return s, nil
}

// Exec runs a named step query, wrapping its error with what.
func execStep(ctx context.Context, db DB, what string, id query, args ...any) error {
	if _, err := db.Exec(ctx, q(id), args...); err != nil {
		return fmt.Errorf("%s: %w", what, err)
	}
	return nil
}

// scalar runs a named query returning one value.
func scalar[T any](ctx context.Context, db DB, what string, id query, args ...any) (T, error) {
	var v T
	if err := db.QueryRow(ctx, q(id), args...).Scan(&v); err != nil {
		return v, fmt.Errorf("%s: %w", what, err)
	}
	return v, nil
}

// SnapshotFile is one table's file entry recorded while generating.
type SnapshotFile struct {
	Schema   string `json:"schema"`
	Table    string `json:"table"`
	File     string `json:"file"`
	EstBytes int64  `json:"est_bytes"`
}

// SnapshotStarted records the slot's LSN, the exported snapshot and the tables to write.
func SnapshotStarted(ctx context.Context, db DB, id, lsn, exported string, files []SnapshotFile) error {
	b, err := json.Marshal(files)
	if err != nil {
		return err
	}
	return execStep(ctx, db, "record start of snapshot "+id, qSnapshotStarted, id, lsn, exported, string(b))
}

// SnapshotRestart forgets a lost exported snapshot's LSN and tables (a new slot follows).
func SnapshotRestart(ctx context.Context, db DB, id string) error {
	return execStep(ctx, db, "record restart of snapshot "+id, qSnapshotRestart, id)
}

// RecordEvent appends a row to steep_repl.events.
func RecordEvent(ctx context.Context, db DB, node, event string, detail map[string]any) error {
	d, err := jsonArg(detail)
	if err != nil {
		return err
	}
	var n *string
	if node != "" {
		n = &node
	}
	return execStep(ctx, db, "record event "+event, qSnapshotEvent, n, event, d)
}

// DoneFile is a table whose file is complete.
type DoneFile struct {
	Schema, Table, File       string
	Rows, RawBytes, FileBytes int64
	SHA256                    string
}

// SnapshotTablesDone returns the tables of a snapshot whose files are complete.
func SnapshotTablesDone(ctx context.Context, db DB, id string) ([]DoneFile, error) {
	rows, err := db.Query(ctx, q(qSnapshotTablesDone), id)
	if err != nil {
		return nil, fmt.Errorf("done tables of snapshot %s: %w", id, err)
	}
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (DoneFile, error) {
		var d DoneFile
		err := r.Scan(&d.Schema, &d.Table, &d.File, &d.Rows, &d.RawBytes, &d.FileBytes, &d.SHA256)
		return d, err
	})
	if err != nil {
		return nil, fmt.Errorf("done tables of snapshot %s: %w", id, err)
	}
	return out, nil
}

// SnapshotTableDone records a table's complete file.
func SnapshotTableDone(ctx context.Context, db DB, id string, d DoneFile) error {
	return execStep(ctx, db, fmt.Sprintf("record file of %s.%s", d.Schema, d.Table), qSnapshotTableDone,
		id, d.Schema, d.Table, d.Rows, d.RawBytes, d.FileBytes, d.SHA256)
}

// SnapshotComplete marks a snapshot complete with its totals and returns when its slot expires.
func SnapshotComplete(ctx context.Context, db DB, id string, tables int, rows, raw, compressed int64, keepSlot bool) (*time.Time, error) {
	return scalar[*time.Time](ctx, db, "record completion of snapshot "+id, qSnapshotComplete, id, tables, rows, raw, compressed, keepSlot)
}

// EnqueueJobAt queues a job to run at runAt.
func EnqueueJobAt(ctx context.Context, db DB, kind string, args map[string]any, node string, maxAttempts int, runAt time.Time) (int64, error) {
	a, err := jsonArg(args)
	if err != nil {
		return 0, err
	}
	var n *string
	if node != "" {
		n = &node
	}
	return scalar[int64](ctx, db, "enqueue "+kind, qEnqueueJobAt, kind, a, n, maxAttempts, runAt)
}

// SnapshotFinished ends a generation as failed or cancelled (not once a delete began).
func SnapshotFinished(ctx context.Context, db DB, id, state, errText string) error {
	var e *string
	if errText != "" {
		e = &errText
	}
	return execStep(ctx, db, "record end of snapshot "+id, qSnapshotFinished, id, state, e)
}

// SnapshotDeleted marks a snapshot deleted (slotDropped: its slot is gone too).
func SnapshotDeleted(ctx context.Context, db DB, id string, slotDropped bool) error {
	return execStep(ctx, db, "record deletion of snapshot "+id, qSnapshotDeleted, id, slotDropped)
}

// SnapshotSlotDropped records that a snapshot's slot is gone.
func SnapshotSlotDropped(ctx context.Context, db DB, id string) error {
	return execStep(ctx, db, "record slot drop of snapshot "+id, qSnapshotSlotDropped, id)
}

// SlotInfo describes a replication slot: whether it exists, is in use, and its confirmed_flush_lsn.
type SlotInfo struct {
	Exists, Active bool
	ConfirmedFlush *string
}

// GetSlot looks a replication slot up on the node db is connected to.
func GetSlot(ctx context.Context, db DB, name string) (SlotInfo, error) {
	s := SlotInfo{Exists: true}
	err := db.QueryRow(ctx, q(qSlotInfo), name).Scan(&s.Active, &s.ConfirmedFlush)
	if errors.Is(err, pgx.ErrNoRows) {
		return SlotInfo{}, nil
	}
	if err != nil {
		return s, fmt.Errorf("slot %s: %w", name, err)
	}
	return s, nil
}

// CountSlotsWithPrefix counts the slots named prefix + something (copies of a snapshot's slot).
func CountSlotsWithPrefix(ctx context.Context, db DB, prefix string) (int64, error) {
	return scalar[int64](ctx, db, "count slots "+prefix+"*", qSlotsWithPrefix, prefix)
}

// CopySlot copies a logical slot (same plugin, same confirmed_flush_lsn) under a new name.
func CopySlot(ctx context.Context, db DB, from, to string) error {
	return execStep(ctx, db, fmt.Sprintf("copy slot %s to %s", from, to), qCopySlot, from, to)
}

// ApplyRow is a row of steep_repl.snapshot_applies.
type ApplyRow struct {
	ID         int64          `json:"id"`
	JobID      *int64         `json:"job_id"`
	Path       string         `json:"path"`
	SnapshotID *string        `json:"snapshot_id"`
	SourceNode *string        `json:"source_node"`
	LSN        *string        `json:"lsn"`
	Options    map[string]any `json:"options"`
	State      string         `json:"state"`
}

// OptInt returns an integer option of the apply.
func (a *ApplyRow) OptInt(key string) int64 {
	f, _ := a.Options[key].(float64)
	return int64(f)
}

// OptBool returns a boolean option of the apply.
func (a *ApplyRow) OptBool(key string) bool {
	b, _ := a.Options[key].(bool)
	return b
}

// GetApply returns an apply's row, or nil.
func GetApply(ctx context.Context, db DB, id int64) (*ApplyRow, error) {
	var a *ApplyRow
	if err := queryJSON(ctx, db, &a, qGetApply, id); err != nil {
		return nil, fmt.Errorf("apply %d: %w", id, err)
	}
	return a, nil
}

// ApplyLoading records the manifest's snapshot, source and LSN; a subscribing apply moves the node to COPYING.
func ApplyLoading(ctx context.Context, db DB, id int64, snapshotID, source, lsn string) error {
	return execStep(ctx, db, fmt.Sprintf("record start of apply %d", id), qApplyLoading, id, snapshotID, source, lsn)
}

// SetApplySnapshotID records which snapshot an apply (of an init) takes.
func SetApplySnapshotID(ctx context.Context, db DB, id int64, snapshotID string) error {
	return execStep(ctx, db, fmt.Sprintf("record snapshot of apply %d", id), qApplySnapshotID, id, snapshotID)
}

// LoadedTable is a table an apply has loaded and verified.
type LoadedTable struct {
	Schema, Table       string
	Rows, TuplesSkipped int64
	Created             bool // the apply created the table from the manifest's DDL
}

// ApplyLoadedTables returns the tables an apply has committed.
func ApplyLoadedTables(ctx context.Context, db DB, id int64) ([]LoadedTable, error) {
	rows, err := db.Query(ctx, q(qApplyLoadedTables), id)
	if err != nil {
		return nil, fmt.Errorf("loaded tables of apply %d: %w", id, err)
	}
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (LoadedTable, error) {
		var t LoadedTable
		err := r.Scan(&t.Schema, &t.Table, &t.Rows, &t.TuplesSkipped, &t.Created)
		return t, err
	})
	if err != nil {
		return nil, fmt.Errorf("loaded tables of apply %d: %w", id, err)
	}
	return out, nil
}

// RecordTableLoaded records a loaded table; call it in the transaction that loaded it.
func RecordTableLoaded(ctx context.Context, tx DB, id int64, schema, table string, rows, skipped, raw int64, sha string, created bool) error {
	return execStep(ctx, tx, fmt.Sprintf("record load of %s.%s", schema, table), qRecordTableLoaded,
		id, schema, table, rows, skipped, raw, sha, created)
}

// SetSequence sets a sequence (quoted, qualified name) to last_value and is_called.
func SetSequence(ctx context.Context, db DB, qualified string, last int64, called bool) error {
	return execStep(ctx, db, "restore sequence "+qualified, qSetSequence, qualified, last, called)
}

// ApplyComplete marks an apply complete.
func ApplyComplete(ctx context.Context, db DB, id int64) error {
	return execStep(ctx, db, fmt.Sprintf("record completion of apply %d", id), qApplyComplete, id)
}

// ApplyFailed marks an apply failed; a subscribing apply fails the node's init.
func ApplyFailed(ctx context.Context, db DB, id int64, reason string) error {
	return execStep(ctx, db, fmt.Sprintf("record failure of apply %d", id), qApplyFailed, id, reason)
}

// ApplyCancelled marks an apply cancelled.
func ApplyCancelled(ctx context.Context, db DB, id int64) error {
	return execStep(ctx, db, fmt.Sprintf("record cancel of apply %d", id), qApplyCancelled, id)
}

// LocalForeignKeys returns (child, parent) pairs of "schema.table" names (unquoted) of every foreign key.
func LocalForeignKeys(ctx context.Context, db DB) ([][2]string, error) {
	rows, err := db.Query(ctx, q(qLocalForeignKeys))
	if err != nil {
		return nil, fmt.Errorf("foreign keys: %w", err)
	}
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) ([2]string, error) {
		var e [2]string
		err := r.Scan(&e[0], &e[1])
		return e, err
	})
	if err != nil {
		return nil, fmt.Errorf("foreign keys: %w", err)
	}
	return out, nil
}

// ConstraintExists reports whether schema.table has a constraint called name.
func ConstraintExists(ctx context.Context, db DB, schema, table, name string) (bool, error) {
	return scalar[bool](ctx, db, "constraint "+name, qConstraintExists, schema, table, name)
}

// NodeConninfo returns a registered node's conninfo (superuser only; it may hold a password: never log it).
func NodeConninfo(ctx context.Context, db DB, node string) (string, error) {
	c, err := scalar[string](ctx, db, "conninfo of node "+node, qNodeConninfo, node)
	if errors.Is(err, pgx.ErrNoRows) {
		return "", fmt.Errorf("node %s is not registered on this node: register it with steep_repl.register_node", node)
	}
	return c, err
}

// InitNames returns the publication, subscription and slot names of an init of target from source.
func InitNames(ctx context.Context, db DB, target, source string) (pub, sub, slot string, err error) {
	err = db.QueryRow(ctx, q(qInitNames), target, source).Scan(&pub, &sub, &slot)
	if err != nil {
		err = fmt.Errorf("init names: %w", err)
	}
	return
}

// LocalNode returns this database's node name, "" when it is not registered.
func LocalNode(ctx context.Context, db DB) (string, error) {
	n, err := scalar[string](ctx, db, "local node", qLocalNode)
	if errors.Is(err, pgx.ErrNoRows) {
		return "", nil
	}
	return n, err
}

// SubscriptionState returns a subscription's oid and whether it is enabled (oid 0: none).
func SubscriptionState(ctx context.Context, db DB, name string) (oid int64, enabled bool, err error) {
	err = db.QueryRow(ctx, q(qSubscriptionState), name).Scan(&oid, &enabled)
	if errors.Is(err, pgx.ErrNoRows) {
		return 0, false, nil
	}
	if err != nil {
		err = fmt.Errorf("subscription %s: %w", name, err)
	}
	return
}

// AdvanceOrigin moves subscription subOID's replication origin to lsn.
func AdvanceOrigin(ctx context.Context, db DB, subOID int64, lsn string) error {
	return execStep(ctx, db, "advance origin to "+lsn, qOriginAdvance, subOID, lsn)
}

// SnapshotSubscribed records the subscribed init (init_progress) and moves the node to CATCHING_UP.
func SnapshotSubscribed(ctx context.Context, db DB, applyID int64, sub, slot, pub string) error {
	return execStep(ctx, db, "record subscription "+sub, qSnapshotSubscribed, applyID, sub, slot, pub)
}

// JobState returns a job's state.
func JobState(ctx context.Context, db DB, id int64) (string, error) {
	return scalar[string](ctx, db, fmt.Sprintf("state of job %d", id), qSnapshotJobState, id)
}
