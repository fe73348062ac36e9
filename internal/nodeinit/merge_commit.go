package nodeinit

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/steepdb/steep_repl/internal/api"
)

// Committing a pass on both nodes. With max_prepared_transactions > 0 on both it is a two-phase
// commit: PREPARE on the source, then on the target, then COMMIT PREPARED on the target, then on
// the source. The source's gid carries the target transaction's xid, so a sidecar killed in
// between leaves a state resolvePrepared can always finish: both prepared -> commit both; the
// source's alone -> commit it if the target's transaction committed, else roll it back.
// Without two-phase commit the source commits first, then the target (logged as not atomic).

const gidPrefix = "steep_repl_merge_"

// gidBase names the transactions of one pass of one merge of target.
func gidBase(target string, mergeID int64, pass string) string {
	return fmt.Sprintf("%s%s_%d_%s", gidPrefix, target, mergeID, pass)
}

// commitBoth commits the pass's transactions of t and s. It runs to the end even if the job
// is being cancelled: once both are prepared, stopping halfway would leave the nodes apart.
func (m *mergeRun) commitBoth(t, s side, pass string) error {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	if !m.twoPhase {
		if err := s.exec(ctx, "COMMIT"); err != nil {
			return err
		}
		if err := t.exec(ctx, "COMMIT"); err != nil {
			return fmt.Errorf("%w (the source's half of the merge is committed: run the merge again to finish it)", err)
		}
		return m.endOrigins(ctx, t, s)
	}
	base := gidBase(m.plan.Target, m.mergeID, pass)
	xid, err := api.CurrentXid(ctx, t.conn)
	if err != nil {
		return fmt.Errorf("on node %s: %w", t.node, err)
	}
	if err := api.PrepareTransaction(ctx, s.conn, base+"_s_"+xid); err != nil {
		return fmt.Errorf("on node %s: %w", s.node, err)
	}
	if err := api.PrepareTransaction(ctx, t.conn, base+"_t"); err != nil {
		if rerr := api.RollbackPrepared(ctx, s.conn, base+"_s_"+xid); rerr != nil {
			m.log.Error("could not roll back the source's prepared transaction", "event", "init.merge_prepared_left", "gid", base+"_s_"+xid, "error", rerr.Error())
		}
		return fmt.Errorf("on node %s: %w", t.node, err)
	}
	if err := api.CommitPrepared(ctx, t.conn, base+"_t"); err != nil {
		return fmt.Errorf("on node %s: %w", t.node, err)
	}
	if err := api.CommitPrepared(ctx, s.conn, base+"_s_"+xid); err != nil {
		return fmt.Errorf("on node %s (the target's half is committed; the next attempt commits this one): %w", s.node, err)
	}
	return m.endOrigins(ctx, t, s)
}

func (m *mergeRun) endOrigins(ctx context.Context, t, s side) error {
	for _, x := range []side{t, s} {
		if err := api.MergeOriginEnd(ctx, x.conn); err != nil {
			return fmt.Errorf("on node %s: %w", x.node, err)
		}
	}
	return nil
}

// resolvePrepared finishes the two-phase commits a killed sidecar left between its PREPAREs and
// COMMIT PREPAREDs of target's merges, on target (db) and source (src).
func resolvePrepared(ctx context.Context, db api.DB, src *pgx.Conn, target string) (int, error) {
	prefix := gidPrefix + target + "_"
	tg, err := api.PreparedTransactions(ctx, db, prefix)
	if err != nil {
		return 0, err
	}
	sg, err := api.PreparedTransactions(ctx, src, prefix)
	if err != nil {
		return 0, err
	}
	onTarget := map[string]bool{}
	for _, g := range tg {
		onTarget[g] = true
	}
	n := 0
	for _, g := range sg {
		i := strings.LastIndex(g, "_s_") // the xid after it is digits; a node name may hold "_s_"
		if i < 0 {
			continue
		}
		base, xid := g[:i], g[i+3:]
		commit := onTarget[base+"_t"]
		if commit {
			if err := api.CommitPrepared(ctx, db, base+"_t"); err != nil {
				return n, err
			}
			delete(onTarget, base+"_t")
		} else {
			st, err := api.XactStatus(ctx, db, xid)
			if err != nil {
				return n, err
			}
			commit = st == "committed"
		}
		if commit {
			err = api.CommitPrepared(ctx, src, g)
		} else {
			err = api.RollbackPrepared(ctx, src, g)
		}
		if err != nil {
			return n, err
		}
		n++
	}
	// A target's prepared transaction whose source half is gone was never decided: the source
	// prepares first and commits last.
	for g := range onTarget {
		if err := api.RollbackPrepared(ctx, db, g); err != nil {
			return n, err
		}
		n++
	}
	return n, nil
}
