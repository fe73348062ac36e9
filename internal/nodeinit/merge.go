package nodeinit

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/steepdb/steep_repl/internal/api"
	"github.com/steepdb/steep_repl/internal/dbconn"
	"github.com/steepdb/steep_repl/internal/runner"
)

// mergeAttemptBound bounds one attempt of a merge: pass 1 moves every differing row in one
// transaction per node, bounded by the merge's own statement_timeout, not by the automatic
// init's 90 s.
const mergeAttemptBound = 7 * 24 * time.Hour

// merge runs init.merge, start_init's method merge, on the target: plan, pass 1 (no lock), the
// write freeze (re-plan and move what changed, slots at the locked point), subscriptions both
// ways. A retried attempt starts over: pass 1 of an earlier one either committed on both nodes
// (the new plan finds nothing left of it) or on neither.
func merge(ctx context.Context, job *runner.Job, log *slog.Logger) (map[string]any, error) {
	return runInit(ctx, job, initMethod{phases: []string{api.StatePreparing, api.StateCopying}, attempt: mergeAttemptBound,
		step: mergeAttempt, failed: mergeFailed}, log)
}

// mergeFailed drops what a failed merge made on both nodes (its subscriptions, slots and
// publications) before the node goes to FAILED: it stopped before subscribing, and its rows
// are either merged on both nodes or on neither.
func mergeFailed(ctx context.Context, job *runner.Job, plan *api.InitPlan, log *slog.Logger) {
	detail := map[string]any{}
	src, err := connectSource(ctx, plan.Source, plan.SourceConninfo)
	if err != nil {
		log.Error("could not reach the source to drop the merge's links", "event", "init.merge_cleanup_failed", "error", err.Error())
		return
	}
	defer src.Close(context.Background())
	if err := cancelMerge(ctx, job, plan, src, detail, log); err != nil {
		log.Error("could not drop the merge's links", "event", "init.merge_cleanup_failed", "error", err.Error())
		return
	}
	if err := api.DropPublication(ctx, src, plan.Publication); err != nil {
		log.Error("could not drop the merge's publication on the source", "event", "init.merge_cleanup_failed", "error", err.Error())
	}
}

// mergeRun is one attempt of a merge: the plans, the sessions to both nodes, the merge's record.
type mergeRun struct {
	job      *runner.Job
	plan     *api.InitPlan
	mi       *api.MergeInit
	set      api.MergeSettings
	src      *pgx.Conn // the session to the source: pass 1, then the source's slot and subscription
	tables   []api.TableName
	mergeID  int64
	twoPhase bool
	since    struct{ target, source time.Time } // each node's clock when the merge began
	capture  *capture                           // what users changed since the first plan (merge_changes.go)
	log      *slog.Logger
}

func mergeAttempt(ctx context.Context, job *runner.Job, plan *api.InitPlan, log *slog.Logger) (map[string]any, error) {
	mi, err := api.GetMergeInit(ctx, job.DB, plan.Target)
	if err != nil {
		return nil, err
	}
	if mi == nil {
		return nil, fmt.Errorf("the init of %s is not a merge", plan.Target)
	}
	set, err := mi.Settings()
	if err != nil {
		return nil, err
	}
	src, err := connectSource(ctx, plan.Source, plan.SourceConninfo)
	if err != nil {
		return nil, err
	}
	defer src.Close(context.Background())
	m := &mergeRun{job: job, plan: plan, mi: mi, set: set, src: src, tables: plan.Tables, log: log}
	if err := api.MergeSessionTimeout(ctx, src, seconds(set.StatementTimeout)); err != nil {
		return nil, fmt.Errorf("on source node %s: %w", plan.Source, err)
	}
	if err := m.dropLeftovers(ctx); err != nil {
		return nil, err
	}
	if m.since.target, err = api.MergeClock(ctx, job.DB); err != nil {
		return nil, err
	}
	if m.since.source, err = api.MergeClock(ctx, src); err != nil {
		return nil, fmt.Errorf("on source node %s: %w", plan.Source, err)
	}
	var baseT, baseS string
	if !set.DryRun {
		if baseT, baseS, err = m.takeBaselines(ctx); err != nil {
			return nil, err
		}
		// The capture slots live as long as this attempt: a retried one plans all again.
		defer func() {
			if m.capture != nil {
				m.dropCapture()
			}
		}()
		if err := m.startCapture(ctx); err != nil {
			return nil, err
		}
	}
	// The first plan, without a lock: most rows move in pass 1, the freeze only re-checks.
	rows, err := api.PlanMergeAs(ctx, job.DB, plan.Source, mi.Options, mi.AsRole)
	if err != nil {
		return nil, withDetail(err)
	}
	if m.mergeID, err = api.MergeBegin(ctx, job.DB, plan.Source, mi.Options, mi.AsRole); err != nil {
		return nil, err
	}
	log = log.With("merge_id", m.mergeID)
	m.log = log
	if !set.DryRun {
		if rows, err = m.judgeRetried(ctx, rows, baseT, baseS); err != nil {
			return nil, err
		}
	}
	counts := countPlan(rows)
	log.Info("merge planned", "event", "init.merge_plan", "rows", len(rows), "dry_run", set.DryRun)
	if set.DryRun {
		return m.dryRun(ctx, rows, counts)
	}
	res, err := m.run(ctx, rows, counts)
	if err != nil && !errors.Is(err, errManualLeft) {
		fctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		if ferr := api.MergeFinish(fctx, job.DB, m.mergeID, nil, map[string]any{"status": "failed", "error": err.Error()}); ferr != nil {
			log.Error("could not record the merge's failure", "event", "init.merge_finish_failed", "error", ferr.Error())
		}
	}
	return res, err
}

// errManualLeft marks the failure of a merge that found conflicts left for the DBA.
var errManualLeft = errors.New("conflicts left for a decision")

func (m *mergeRun) run(ctx context.Context, rows []api.MergeRow, counts []tableCount) (map[string]any, error) {
	if err := m.stopOnManual(ctx, rows, "the plan"); err != nil {
		return nil, err
	}
	var err error
	if m.twoPhase, err = bothPrepare(ctx, m.job.DB, m.src); err != nil {
		return nil, err
	}
	if !m.twoPhase {
		m.log.Warn("max_prepared_transactions is 0 on a node: the two nodes' commits of each pass are not atomic",
			"event", "init.merge_not_atomic")
		// In events too: the DBA reading the init's history must see that a failure between the
		// two commits of a pass could have left one node merged and not the other.
		if err := api.RecordEvent(ctx, m.job.DB, m.plan.Target, "init.merge_not_atomic",
			map[string]any{"merge_id": m.mergeID, "reason": "max_prepared_transactions is 0 on a node: each pass commits on the source, then the target"}); err != nil {
			return nil, err
		}
	}
	if err := api.MergeCopying(ctx, m.job.DB, m.plan.Target, totals(counts)); err != nil {
		return nil, err
	}
	if err := m.prepareLinks(ctx); err != nil {
		return nil, err
	}
	started := time.Now()
	moved, err := m.pass1WithRetries(ctx, rows)
	if err != nil {
		return nil, err
	}
	m.log.Info("pass 1 committed on both nodes", "event", "init.merge_moved", "to_local", moved.toLocal, "to_peer", moved.toPeer,
		"skipped_changed", moved.skipped, "seconds", fmt.Sprintf("%.2f", time.Since(started).Seconds()))
	fr, err := m.freezeWithRetries(ctx)
	if err != nil {
		return nil, err
	}
	m.dropCapture()
	if err := m.subscribeBoth(ctx, fr); err != nil {
		return nil, err
	}
	result := map[string]any{"status": "merged", "to_local": moved.toLocal + fr.moved.toLocal, "to_peer": moved.toPeer + fr.moved.toPeer,
		"deleted_local": moved.deletedLocal + fr.moved.deletedLocal, "deleted_peer": moved.deletedPeer + fr.moved.deletedPeer,
		"pass1": map[string]any{"to_local": moved.toLocal, "to_peer": moved.toPeer, "deleted_local": moved.deletedLocal, "deleted_peer": moved.deletedPeer,
			"skipped_changed": moved.skipped},
		"freeze": map[string]any{"to_local": fr.moved.toLocal, "to_peer": fr.moved.toPeer, "deleted_local": fr.moved.deletedLocal,
			"deleted_peer": fr.moved.deletedPeer, "attempts": fr.attempts},
		"freeze_ms": fr.ms, "atomic": m.twoPhase, "tables": counts}
	if err := api.MergeFinish(ctx, m.job.DB, m.mergeID, &fr.ms, result); err != nil {
		return nil, err
	}
	delete(result, "tables")
	result["merge_id"] = m.mergeID
	return result, nil
}

// dryRun records the plan (merges with dry_run, every row in merge_audit_log), moves nothing,
// and ends the init: UNINITIALIZED, event init.merge_planned with the counts.
func (m *mergeRun) dryRun(ctx context.Context, rows []api.MergeRow, counts []tableCount) (map[string]any, error) {
	for start := 0; start < len(rows); start += m.set.BatchRows {
		batch := rows[start:min(len(rows), start+m.set.BatchRows)]
		if _, err := api.MergeAudit(ctx, m.job.DB, m.mergeID, auditRows(batch, nil, nil, false)); err != nil {
			return nil, err
		}
	}
	if err := api.MergeFinish(ctx, m.job.DB, m.mergeID, nil, map[string]any{"status": "planned", "dry_run": true, "tables": counts}); err != nil {
		return nil, err
	}
	if err := api.MergePlanned(ctx, m.job.DB, m.plan.Target, m.mergeID, counts); err != nil {
		return nil, err
	}
	m.log.Info("merge dry run recorded; nothing moved", "event", "init.merge_planned", "rows", len(rows))
	return map[string]any{"merge_id": m.mergeID, "dry_run": true, "rows": len(rows)}, nil
}

// stopOnManual: conflicts under strategy manual are reported (audit rows, resolution manual) and
// nothing moves at all, so the nodes stay as they were until the DBA chooses how to resolve them.
func (m *mergeRun) stopOnManual(ctx context.Context, rows []api.MergeRow, when string) error {
	var manual []api.MergeRow
	byTable := map[string]int{}
	var order []string
	for _, r := range rows {
		if r.Resolution == "manual" {
			manual = append(manual, r)
			t := api.Identifier(r.Schema, r.Table)
			if byTable[t] == 0 {
				order = append(order, t)
			}
			byTable[t]++
		}
	}
	if len(manual) == 0 {
		return nil
	}
	if _, err := api.MergeAudit(ctx, m.job.DB, m.mergeID, auditRows(manual, nil, nil, false)); err != nil {
		return err
	}
	parts := make([]string, len(order))
	for i, t := range order {
		parts[i] = fmt.Sprintf("%s (%d)", t, byTable[t])
	}
	reason := fmt.Sprintf("%d conflicting row(s) left for a decision (strategy manual) in %s, found by %s: nothing was moved and no subscription created; "+
		"the rows are in steep_repl.merge_audit_log (merge_id %d, resolution manual) and steep_repl.merge_plan; choose a strategy "+
		"(\"strategy\" or \"table_strategies\") and run start_init again", len(manual), strings.Join(parts, ", "), when, m.mergeID)
	if err := api.MergeFinish(ctx, m.job.DB, m.mergeID, nil, map[string]any{"status": "manual", "manual": len(manual)}); err != nil {
		return err
	}
	m.log.Warn("conflicts left for a decision; merge stopped", "event", "init.merge_manual", "rows", len(manual))
	return fmt.Errorf("%w: %s", errManualLeft, reason)
}

// bothPrepare reports whether both nodes take two-phase commits (max_prepared_transactions > 0).
func bothPrepare(ctx context.Context, target api.DB, src *pgx.Conn) (bool, error) {
	t, err := api.MaxPreparedTransactions(ctx, target)
	if err != nil {
		return false, err
	}
	s, err := api.MaxPreparedTransactions(ctx, src)
	if err != nil {
		return false, err
	}
	return t > 0 && s > 0, nil
}

// openTarget opens a session of its own to the target (the pool's settings), for a transaction
// that must not go back to the pool half done.
func (m *mergeRun) openTarget(ctx context.Context) (*pgx.Conn, error) {
	cfg := m.job.DB.Config().ConnConfig.Copy()
	c, err := pgx.ConnectConfig(ctx, cfg)
	if err != nil {
		return nil, runner.Retryable(fmt.Errorf("connect to the target: %w", dbconn.RedactError(err, cfg.ConnString())))
	}
	if err := api.MergeSessionTimeout(ctx, c, seconds(m.set.StatementTimeout)); err != nil {
		c.Close(context.Background())
		return nil, err
	}
	return c, nil
}

func seconds(s float64) time.Duration { return time.Duration(s * float64(time.Second)) }

// tableCount is what a plan moves in one table, per direction.
type tableCount struct {
	Schema      string `json:"schema_name"`
	Table       string `json:"table_name"`
	ToLocal     int64  `json:"to_local"`
	ToPeer      int64  `json:"to_peer"`
	Manual      int64  `json:"manual"`
	Conflicting int64  `json:"conflicting"`
	LocalOnly   int64  `json:"local_only"`
	PeerOnly    int64  `json:"peer_only"`
	Ties        int64  `json:"ties"`
	// Only in a retried attempt's plan (judgeDeletes): rows deleted on one node since the first
	// attempt's pass 1, deleted on the other; rows changed against such a delete.
	DeleteLocal  int64 `json:"delete_local,omitempty"`
	DeletePeer   int64 `json:"delete_peer,omitempty"`
	UpdateDelete int64 `json:"update_delete,omitempty"`
}

// countPlan counts a plan's rows per table (in apply order) and direction.
func countPlan(rows []api.MergeRow) []tableCount {
	var out []tableCount
	idx := map[api.TableName]int{}
	for _, r := range rows {
		k := api.TableName{Schema: r.Schema, Table: r.Table}
		i, ok := idx[k]
		if !ok {
			i = len(out)
			idx[k] = i
			out = append(out, tableCount{Schema: r.Schema, Table: r.Table})
		}
		c := &out[i]
		switch r.Resolution {
		case "to_local":
			c.ToLocal++
		case "to_peer":
			c.ToPeer++
		case deleteLocal:
			c.DeleteLocal++
		case deletePeer:
			c.DeletePeer++
		default:
			c.Manual++
		}
		switch r.Category {
		case "conflicting":
			c.Conflicting++
		case "local_only":
			c.LocalOnly++
		case "peer_only":
			c.PeerOnly++
		case updateDelete:
			c.UpdateDelete++
		}
		if r.Tie {
			c.Ties++
		}
	}
	return out
}

func totals(counts []tableCount) []api.MergeTableTotal {
	out := make([]api.MergeTableTotal, len(counts))
	for i, c := range counts {
		out[i] = api.MergeTableTotal{Schema: c.Schema, Table: c.Table, Rows: c.ToLocal + c.ToPeer + c.DeleteLocal + c.DeletePeer}
	}
	return out
}
