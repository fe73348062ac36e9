package api

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
)

// The bidirectional merge (start_init method merge, job init.merge): the plan and row movers
// of sql/73_merge.sql, the job's steps of sql/75_merge_init.sql, and the two-phase commit and
// slot calls its write freeze needs.

// StartMerge calls steep_repl.start_init(target, source, 'merge', options) on the target and
// returns the init.merge job id.
func StartMerge(ctx context.Context, db DB, target, source string, options map[string]any) (int64, error) {
	o, err := jsonArg(options)
	if err != nil {
		return 0, fmt.Errorf("merge %s with %s: encode options: %w", target, source, err)
	}
	var id int64
	if err := db.QueryRow(ctx, q(qStartInit), target, source, "merge", o).Scan(&id); err != nil {
		return 0, fmt.Errorf("merge %s with %s: %w", target, source, err)
	}
	return id, nil
}

// MergeInit is what init.merge needs besides the InitPlan: the merge options, the role that
// asked (the plan reads both nodes as it), and the names of the reverse link.
type MergeInit struct {
	Options             json.RawMessage `json:"options"`
	AsRole              string          `json:"as_role"`
	LagThreshold        *int64          `json:"lag_threshold"`
	StallTimeout        *float64        `json:"stall_timeout"`
	SourceTimeout       *float64        `json:"source_timeout"`
	ReversePublication  string          `json:"reverse_publication"` // on the target
	ReverseSubscription string          `json:"reverse_subscription"`
	ReverseSlot         string          `json:"reverse_slot"` // on the target
}

// MergeSettings are the options init.merge acts on (filled by _merge_options).
type MergeSettings struct {
	DryRun           bool    `json:"dry_run"`
	FreezeTimeout    float64 `json:"freeze_timeout"`
	BatchRows        int     `json:"batch_rows"`
	StatementTimeout float64 `json:"statement_timeout"`
}

// Settings decodes the options init.merge acts on.
func (m *MergeInit) Settings() (MergeSettings, error) {
	s := MergeSettings{FreezeTimeout: 30, BatchRows: 10000, StatementTimeout: 3600}
	if err := json.Unmarshal(m.Options, &s); err != nil {
		return s, fmt.Errorf("merge options: %w", err)
	}
	if s.BatchRows < 1 {
		s.BatchRows = 10000
	}
	return s, nil
}

// GetMergeInit returns node's merge init, or nil when its init is not a merge.
func GetMergeInit(ctx context.Context, db DB, node string) (*MergeInit, error) {
	var raw *string
	if err := db.QueryRow(ctx, q(qMergeInitPlan), node).Scan(&raw); err != nil && !errors.Is(err, pgx.ErrNoRows) {
		return nil, fmt.Errorf("merge plan of %s: %w", node, err)
	}
	if raw == nil {
		return nil, nil
	}
	var m MergeInit
	if err := json.Unmarshal([]byte(*raw), &m); err != nil {
		return nil, fmt.Errorf("merge plan of %s: decode: %w", node, err)
	}
	return &m, nil
}

// MergeRow is one row of a merge plan that is not identical on both nodes: where it goes.
type MergeRow struct {
	ApplyOrder     int             `json:"apply_order"`
	Schema         string          `json:"schema_name"`
	Table          string          `json:"table_name"`
	Key            json.RawMessage `json:"key"`
	Category       string          `json:"category"`   // conflicting | local_only | peer_only
	Resolution     string          `json:"resolution"` // to_local | to_peer | manual
	Tie            bool            `json:"tie"`
	LocalHash      *int64          `json:"local_hash"`
	PeerHash       *int64          `json:"peer_hash"`
	LocalCommitted *time.Time      `json:"local_committed_at"`
	PeerCommitted  *time.Time      `json:"peer_committed_at"`
}

func collectMergeRows(rows pgx.Rows, what string) ([]MergeRow, error) {
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (MergeRow, error) {
		var m MergeRow
		var key string
		err := r.Scan(&m.ApplyOrder, &m.Schema, &m.Table, &key, &m.Category, &m.Resolution, &m.Tie,
			&m.LocalHash, &m.PeerHash, &m.LocalCommitted, &m.PeerCommitted)
		m.Key = json.RawMessage(key)
		return m, err
	})
	if err != nil {
		return nil, fmt.Errorf("%s: %w", what, err)
	}
	return out, nil
}

// PlanMergeAs computes the merge plan of this node with peer (steep_repl._merge_plan) reading
// both nodes as asRole; it changes nothing. Sidecar only.
func PlanMergeAs(ctx context.Context, db DB, peer string, options json.RawMessage, asRole string) ([]MergeRow, error) {
	what := "merge plan with " + peer
	rows, err := db.Query(ctx, q(qMergePlanAs), peer, string(options), asRole)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", what, err)
	}
	return collectMergeRows(rows, what)
}

// PlanMerge is the DBA's dry run (steep_repl.merge_plan): what a merge of this node with peer
// would move, as the caller; it changes nothing.
func PlanMerge(ctx context.Context, db DB, peer string, options map[string]any) ([]MergeRow, error) {
	what := "merge plan with " + peer
	if options == nil {
		options = map[string]any{}
	}
	o, err := jsonArg(options)
	if err != nil {
		return nil, fmt.Errorf("%s: encode options: %w", what, err)
	}
	rows, err := db.Query(ctx, q(qMergePlan), peer, o)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", what, err)
	}
	return collectMergeRows(rows, what)
}

// MergeReadRows returns the rows of table whose keys are in keys, as a JSON array of row
// objects (steep_repl._merge_rows, read as the table's owner).
func MergeReadRows(ctx context.Context, db DB, table TableName, keys []json.RawMessage) (json.RawMessage, error) {
	k, err := keysJSON(keys)
	if err != nil {
		return nil, err
	}
	s, err := scalar[string](ctx, db, "read rows of "+table.String(), qMergeRows, Identifier(table.Schema, table.Table), k)
	return json.RawMessage(s), err
}

// MergeWrite is what MergeApplyRows or MergeDeleteRows did: the rows written (or deleted) and
// the keys left alone because the node no longer held the version the plan read (#13).
type MergeWrite struct {
	Written int64    `json:"written"`
	Deleted int64    `json:"deleted"`
	Skipped []string `json:"skipped"`
}

// expectJSON is the expected versions {key text: row hash or null} the merge's writes take.
func expectJSON(expect map[string]*int64) (string, error) {
	b, err := json.Marshal(expect)
	if err != nil {
		return "", fmt.Errorf("encode %d expected versions: %w", len(expect), err)
	}
	return string(b), nil
}

func mergeWrite(ctx context.Context, db DB, what string, id query, args ...any) (MergeWrite, error) {
	var w MergeWrite
	s, err := scalar[string](ctx, db, what, id, args...)
	if err != nil {
		return w, err
	}
	if err := json.Unmarshal([]byte(s), &w); err != nil {
		return w, fmt.Errorf("%s: decode %q: %w", what, s, err)
	}
	return w, nil
}

// MergeApplyRows upserts rows (a JSON array from MergeReadRows) into table where it still holds
// the version expect names per key (its row_hash, nil: absent), and says what it wrote and left
// (steep_repl._merge_apply: as the owner, user triggers off; 23505 on a collision).
func MergeApplyRows(ctx context.Context, db DB, table TableName, rows json.RawMessage, expect map[string]*int64) (MergeWrite, error) {
	e, err := expectJSON(expect)
	if err != nil {
		return MergeWrite{}, err
	}
	return mergeWrite(ctx, db, "apply rows to "+table.String(), qMergeApply, Identifier(table.Schema, table.Table), string(rows), e)
}

// MergeOriginAs makes this session's writes carry the replication origin of subscription
// (pg_<oid>), the one the merge uses on each node; it returns the origin's name.
func MergeOriginAs(ctx context.Context, db DB, subscription string) (string, error) {
	return scalar[string](ctx, db, "set up the origin of subscription "+subscription, qMergeOriginAs, subscription)
}

// MergeAuditAgain adds the freeze's audit rows of merge id, replacing pass 1's for a row moved again.
func MergeAuditAgain(ctx context.Context, db DB, id int64, rows []map[string]any) (int64, error) {
	b, err := json.Marshal(rows)
	if err != nil {
		return 0, err
	}
	return scalar[int64](ctx, db, fmt.Sprintf("audit merge %d", id), qMergeAuditAgain, id, string(b))
}

// MergeChangedSince returns, of the rows of table with keys, the keys (as the plan prints them)
// a user changed after since, that is not by a transaction of origin; ok false when the node
// does not track commit timestamps.
func MergeChangedSince(ctx context.Context, db DB, table TableName, keys []json.RawMessage, since time.Time, origin string) (changed []string, ok bool, err error) {
	k, err := keysJSON(keys)
	if err != nil {
		return nil, false, err
	}
	var out []string
	if err := db.QueryRow(ctx, q(qMergeChangedSince), Identifier(table.Schema, table.Table), k, since, origin).Scan(&out); err != nil {
		return nil, false, fmt.Errorf("rows of %s changed since %s: %w", table, since.Format(time.RFC3339Nano), err)
	}
	return out, out != nil, nil
}

// MergeClock is the node's clock_timestamp().
func MergeClock(ctx context.Context, db DB) (time.Time, error) {
	return scalar[time.Time](ctx, db, "read the clock", qMergeClock)
}

// MergeOriginEnd resets this session's replication origin.
func MergeOriginEnd(ctx context.Context, db DB) error {
	return execStep(ctx, db, "reset the merge's replication origin", qMergeOriginEnd)
}

// MergeBegin records a merge (or dry run) in steep_repl.merges and returns its id.
func MergeBegin(ctx context.Context, db DB, peer string, options json.RawMessage, asRole string) (int64, error) {
	return scalar[int64](ctx, db, "record the merge with "+peer, qMergeBegin, peer, string(options), asRole)
}

// MergeAudit inserts audit rows (objects named as merge_audit_log's columns) of merge id.
func MergeAudit(ctx context.Context, db DB, id int64, rows []map[string]any) (int64, error) {
	b, err := json.Marshal(rows)
	if err != nil {
		return 0, err
	}
	return scalar[int64](ctx, db, fmt.Sprintf("audit merge %d", id), qMergeAudit, id, string(b))
}

// MergeFinish records the end of merge id: its freeze time (nil: none) and result.
func MergeFinish(ctx context.Context, db DB, id int64, freezeMS *float64, result map[string]any) error {
	r, err := jsonArg(result)
	if err != nil {
		return err
	}
	return execStep(ctx, db, fmt.Sprintf("finish merge %d", id), qMergeFinish, id, freezeMS, r)
}

// MergeTableTotal is the number of rows a merge moves in one table.
type MergeTableTotal struct {
	Schema string `json:"schema_name"`
	Table  string `json:"table_name"`
	Rows   int64  `json:"rows"`
}

// MergeCopying records the rows to move per table and moves node's init to COPYING.
func MergeCopying(ctx context.Context, db DB, node string, totals []MergeTableTotal) error {
	b, err := json.Marshal(totals)
	if err != nil {
		return err
	}
	return execStep(ctx, db, "merge of "+node+": start moving rows", qMergeCopying, node, string(b))
}

// MergeMoved records the rows moved so far of one table (done: all) and the progress message.
func MergeMoved(ctx context.Context, db DB, node string, table TableName, moved int64, done bool, message string) error {
	return execStep(ctx, db, "merge of "+node+": record progress", qMergeMoved, node, table.Schema, table.Table, moved, done, message)
}

// MergeMessage sets the progress message of node's merge.
func MergeMessage(ctx context.Context, db DB, node, message string) error {
	return execStep(ctx, db, "merge of "+node+": record message", qMergeMessage, node, message)
}

// MergePlanned ends node's dry run: event init.merge_planned with counts, back to UNINITIALIZED.
func MergePlanned(ctx context.Context, db DB, node string, id int64, counts any) error {
	c, err := jsonArg(counts)
	if err != nil {
		return err
	}
	return execStep(ctx, db, "merge of "+node+": record the dry run", qMergePlanned, node, id, c)
}

// MergeLock locks tables IN EXCLUSIVE MODE for the rest of the transaction (the write freeze).
func MergeLock(ctx context.Context, db DB, tables []TableName) error {
	b, err := json.Marshal(tables)
	if err != nil {
		return err
	}
	return execStep(ctx, db, "lock the tables in scope", qMergeLock, string(b))
}

// MergeLink records, on the merge's source, its subscription from peer as its own init.
func MergeLink(ctx context.Context, db DB, peer, subscription, slot, publication string, tables []TableName, options map[string]any) error {
	t, err := json.Marshal(tables)
	if err != nil {
		return err
	}
	o, err := jsonArg(options)
	if err != nil {
		return err
	}
	return execStep(ctx, db, "record the link from "+peer, qMergeLink, peer, subscription, slot, publication, string(t), o)
}

// MergeLocalTimeouts sets lock_timeout and statement_timeout for the current transaction.
func MergeLocalTimeouts(ctx context.Context, db DB, lock, statement time.Duration) error {
	return execStep(ctx, db, "set the freeze's timeouts", qMergeLocalTimeouts, durationSetting(lock), durationSetting(statement))
}

// MergeYieldDeadlocks sets, for the current transaction and where the session may (a
// superuser's), a deadlock_timeout of d: of two sessions waiting on each other, the one whose
// timeout ends first finds the deadlock and is the one aborted, so a short one makes the merge's
// pass, not the user's transaction, give way.
func MergeYieldDeadlocks(ctx context.Context, db DB, d time.Duration) error {
	return execStep(ctx, db, "set deadlock_timeout", qMergeYieldDeadlocks, durationSetting(d))
}

// MergeSessionTimeout sets the session's statement_timeout.
func MergeSessionTimeout(ctx context.Context, db DB, d time.Duration) error {
	return execStep(ctx, db, "set statement_timeout", qMergeSessionTimeout, durationSetting(d))
}

func durationSetting(d time.Duration) string { return fmt.Sprintf("%dms", d.Milliseconds()) }

// CreateLogicalSlot creates logical slot name (pgoutput) and returns its consistent point.
func CreateLogicalSlot(ctx context.Context, db DB, name string) (string, error) {
	return scalar[string](ctx, db, "create replication slot "+name, qMergeCreateSlot, name)
}

// MaxPreparedTransactions is the server's max_prepared_transactions.
func MaxPreparedTransactions(ctx context.Context, db DB) (int, error) {
	return scalar[int](ctx, db, "max_prepared_transactions", qMergeMaxPrepared)
}

// PreparedTransactions lists the prepared transactions of this database whose gid starts with prefix.
func PreparedTransactions(ctx context.Context, db DB, prefix string) ([]string, error) {
	rows, err := db.Query(ctx, q(qMergePreparedXacts), prefix)
	if err != nil {
		return nil, fmt.Errorf("prepared transactions: %w", err)
	}
	out, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return nil, fmt.Errorf("prepared transactions: %w", err)
	}
	return out, nil
}

// CurrentXid is the current transaction's id (assigning one).
func CurrentXid(ctx context.Context, db DB) (string, error) {
	return scalar[string](ctx, db, "transaction id", qMergeCurrentXid)
}

// XactStatus is pg_xact_status of xid: committed, aborted, in progress, or "" when too old.
func XactStatus(ctx context.Context, db DB, xid string) (string, error) {
	s, err := scalar[*string](ctx, db, "status of transaction "+xid, qMergeXactStatus, xid)
	return deref(s), err
}

// PrepareTransaction prepares the session's transaction as gid (two-phase commit).
func PrepareTransaction(ctx context.Context, db DB, gid string) error {
	if _, err := db.Exec(ctx, "PREPARE TRANSACTION "+quoteLiteral(gid)); err != nil {
		return fmt.Errorf("prepare transaction %s: %w", gid, err)
	}
	return nil
}

// CommitPrepared commits prepared transaction gid.
func CommitPrepared(ctx context.Context, db DB, gid string) error {
	if _, err := db.Exec(ctx, "COMMIT PREPARED "+quoteLiteral(gid)); err != nil {
		return fmt.Errorf("commit prepared %s: %w", gid, err)
	}
	return nil
}

// RollbackPrepared rolls back prepared transaction gid.
func RollbackPrepared(ctx context.Context, db DB, gid string) error {
	if _, err := db.Exec(ctx, "ROLLBACK PREPARED "+quoteLiteral(gid)); err != nil {
		return fmt.Errorf("roll back prepared %s: %w", gid, err)
	}
	return nil
}

// MergeBaseline is this node's baseline xid for a merge (steep_repl._merge_baseline): every
// transaction below it has ended, waiting up to wait for those running now.
func MergeBaseline(ctx context.Context, db DB, wait time.Duration) (string, error) {
	return scalar[string](ctx, db, "take the merge's baseline", qMergeBaseline, wait.Seconds())
}

// MergeRecordBaseline records merge id's job and both nodes' baselines.
func MergeRecordBaseline(ctx context.Context, db DB, id, jobID int64, local, peer string) error {
	return execStep(ctx, db, fmt.Sprintf("record the baseline of merge %d", id), qMergeRecordBaseline, id, jobID, local, peer)
}

// MergeRecordPass records the xids of a pass of merge id on both nodes (in the target's
// transaction of that pass).
func MergeRecordPass(ctx context.Context, db DB, id int64, localXid, peerXid string) error {
	return execStep(ctx, db, fmt.Sprintf("record a pass of merge %d", id), qMergeRecordPass, id, localXid, peerXid)
}

// MergeBaselines is what tells a delete made during a merge: each node's baseline and the
// xids of the merge's passes there (of its job's attempts).
type MergeBaselines struct {
	Local, Peer         string
	LocalXids, PeerXids []string
}

// Active reports whether a pass has committed, so that the nodes held the union since.
func (b *MergeBaselines) Active() bool {
	return b != nil && b.Local != "" && b.Peer != "" && len(b.LocalXids) > 0 && len(b.PeerXids) > 0
}

// MergeBaselineOf returns the baselines merge id judges deletes by; nil before a pass committed.
func MergeBaselineOf(ctx context.Context, db DB, id int64) (*MergeBaselines, error) {
	var l, p *string
	var b MergeBaselines
	err := db.QueryRow(ctx, q(qMergeBaselineOf), id).Scan(&l, &p, &b.LocalXids, &b.PeerXids)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("baseline of merge %d: %w", id, err)
	}
	b.Local, b.Peer = deref(l), deref(p)
	return &b, nil
}

// MergeExistedBefore returns, of the rows of table with keys, the keys of those whose version
// predates baseline or was written by one of xids (the rows the other node deleted meanwhile).
func MergeExistedBefore(ctx context.Context, db DB, table TableName, keys []json.RawMessage, baseline string, xids []string) ([]string, error) {
	k, err := keysJSON(keys)
	if err != nil {
		return nil, err
	}
	var out []string
	if err := db.QueryRow(ctx, q(qMergeExistedBefore), Identifier(table.Schema, table.Table), k, baseline, xids).Scan(&out); err != nil {
		return nil, fmt.Errorf("rows of %s older than the merge's baseline: %w", table, err)
	}
	return out, nil
}

// MergeDeleteRows deletes the rows of table whose keys expect names, each only if still that
// version (steep_repl._merge_delete: as the owner, user triggers off).
func MergeDeleteRows(ctx context.Context, db DB, table TableName, expect map[string]*int64) (MergeWrite, error) {
	e, err := expectJSON(expect)
	if err != nil {
		return MergeWrite{}, err
	}
	return mergeWrite(ctx, db, "delete rows of "+table.String(), qMergeDelete, Identifier(table.Schema, table.Table), e)
}

// MergeMovedKeys returns, of keys of table, those a pass of merge id's job moved.
func MergeMovedKeys(ctx context.Context, db DB, id int64, table TableName, keys []json.RawMessage) ([]string, error) {
	k, err := keysJSON(keys)
	if err != nil {
		return nil, err
	}
	var out []string
	if err := db.QueryRow(ctx, q(qMergeMovedKeys), id, table.Schema, table.Table, k).Scan(&out); err != nil {
		return nil, fmt.Errorf("rows of %s moved by merge %d: %w", table, id, err)
	}
	return out, nil
}

// keysJSON is keys as the jsonb array of key objects the merge's functions take.
func keysJSON(keys []json.RawMessage) (string, error) {
	b, err := json.Marshal(keys)
	if err != nil {
		return "", fmt.Errorf("encode %d keys: %w", len(keys), err)
	}
	return string(b), nil
}
