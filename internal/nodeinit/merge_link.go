package nodeinit

import (
	"context"
	"fmt"
	"log/slog"

	"github.com/jackc/pgx/v5"

	"github.com/steepdb/steep_repl/internal/api"
	"github.com/steepdb/steep_repl/internal/runner"
)

// The two links of a merge: the target's subscription from the source (the init's own, which
// tick() takes to SYNCHRONIZED) and the source's subscription from the target, created by the
// target's sidecar over its source session and recorded there as the source's own init
// (init_merge_link), so the source's tick takes it to SYNCHRONIZED too.

// prepareLinks creates, before pass 1, each node's subscription from the other, disabled and
// without a slot yet: the merge's writes on a node carry the origin of its subscription
// (side.originAs). The publications exist already (preparePublications, before the capture
// slots: a change is decoded with the catalogs of its LSN), and before the freeze's lock, on
// which CREATE PUBLICATION ... FOR TABLE would wait.
func (m *mergeRun) prepareLinks(ctx context.Context) error {
	conninfo, err := api.NodeConninfo(ctx, m.src, m.plan.Target) // how the source reaches the target
	if err != nil {
		return fmt.Errorf("on source node %s: %w", m.plan.Source, err)
	}
	for _, x := range []struct {
		db   api.DB
		node string
		sub  api.Subscription
	}{
		{m.job.DB, m.plan.Target, api.Subscription{Name: m.plan.Subscription, Conninfo: m.plan.SourceConninfo, Publication: m.plan.Publication, Slot: m.plan.SlotName, Disabled: true}},
		{m.src, m.plan.Source, api.Subscription{Name: m.mi.ReverseSubscription, Conninfo: conninfo, Publication: m.mi.ReversePublication, Slot: m.mi.ReverseSlot, Disabled: true}},
	} {
		if err := api.CreateSubscription(ctx, x.db, x.sub); err != nil {
			return fmt.Errorf("on node %s: %w", x.node, err)
		}
		m.log.Info("subscription created (disabled, no slot yet)", "event", "init.merge_subscription_created", "node", x.node, "subscription", x.sub.Name)
	}
	return nil
}

// subscribeBoth subscribes each node to the other from the slots the freeze made.
func (m *mergeRun) subscribeBoth(ctx context.Context, fr freezeResult) error {
	_ = api.MergeMessage(ctx, m.job.DB, m.plan.Target, "merge: subscribing both ways")
	err := subscribeAt(ctx, m.job.DB, api.Subscription{Name: m.plan.Subscription, Conninfo: m.plan.SourceConninfo,
		Publication: m.plan.Publication, Slot: m.plan.SlotName}, fr.sourceLSN, "init.merge", nil, m.log)
	if err != nil {
		return err
	}
	err = subscribeAt(ctx, m.src, api.Subscription{Name: m.mi.ReverseSubscription,
		Publication: m.mi.ReversePublication, Slot: m.mi.ReverseSlot}, fr.targetLSN, "init.merge_reverse", nil, m.log)
	if err != nil {
		return fmt.Errorf("on source node %s: %w", m.plan.Source, err)
	}
	if err := api.InitSubscribed(ctx, m.job.DB, m.plan.Target, true, 1); err != nil {
		return err
	}
	opts := map[string]any{"merge_with": m.plan.Target, "merge_id": m.mergeID}
	for k, v := range map[string]any{"lag_threshold": m.mi.LagThreshold, "stall_timeout": m.mi.StallTimeout, "source_timeout": m.mi.SourceTimeout} {
		opts[k] = v
	}
	if err := api.MergeLink(ctx, m.src, m.plan.Target, m.mi.ReverseSubscription, m.mi.ReverseSlot, m.mi.ReversePublication, m.tables, opts); err != nil {
		return fmt.Errorf("on source node %s: %w", m.plan.Source, err)
	}
	_ = api.MergeMessage(ctx, m.job.DB, m.plan.Target, fmt.Sprintf("merged with %s (merge %d, freeze %.0f ms); catching up", m.plan.Source, m.mergeID, fr.ms))
	m.log.Info("subscribed both ways", "event", "init.merge_subscribed", "subscription", m.plan.Subscription,
		"reverse_subscription", m.mi.ReverseSubscription, "freeze_ms", fr.ms)
	return nil
}

// dropLeftovers undoes what an earlier attempt left: it finishes its two-phase commits, drops its
// subscriptions on both nodes and any slot of its freeze.
func (m *mergeRun) dropLeftovers(ctx context.Context) error {
	n, err := resolvePrepared(ctx, m.job.DB, m.src, m.plan.Target)
	if err != nil {
		return fmt.Errorf("finish the prepared transactions of an earlier attempt: %w", err)
	}
	if n > 0 {
		m.log.Warn("finished the two-phase commits of an earlier attempt", "event", "init.merge_prepared_resolved", "transactions", n)
	}
	return dropMergeLinks(ctx, m.job.DB, m.src, m.plan, m.mi, m.log)
}

// dropMergeLinks drops both subscriptions of a merge, their slots and its capture slots.
func dropMergeLinks(ctx context.Context, db api.DB, src *pgx.Conn, plan *api.InitPlan, mi *api.MergeInit, log *slog.Logger) error {
	for _, x := range []struct {
		db        api.DB
		node, sub string
	}{{db, plan.Target, plan.Subscription}, {src, plan.Source, mi.ReverseSubscription}} {
		exists, err := api.SubscriptionExists(ctx, x.db, x.sub)
		if err != nil {
			return fmt.Errorf("on node %s: %w", x.node, err)
		}
		if exists {
			// Its slot may not exist yet (made by the freeze): detached, the slots are dropped below.
			if err := api.DetachSubscription(ctx, x.db, x.sub); err != nil {
				return fmt.Errorf("on node %s: %w", x.node, err)
			}
			if err := api.DropSubscription(ctx, x.db, x.sub); err != nil {
				return fmt.Errorf("on node %s: %w", x.node, err)
			}
			log.Info("dropped a subscription of the merge", "event", "init.leftover_dropped", "node", x.node, "subscription", x.sub)
		}
	}
	for _, x := range []struct {
		db         api.DB
		node, slot string
	}{{src, plan.Source, plan.SlotName}, {db, plan.Target, mi.ReverseSlot},
		{src, plan.Source, captureSlot(plan.SlotName)}, {db, plan.Target, captureSlot(mi.ReverseSlot)}} {
		info, err := api.GetSlot(ctx, x.db, x.slot)
		if err != nil {
			return fmt.Errorf("on node %s: %w", x.node, err)
		}
		if !info.Exists {
			continue
		}
		if info.Active {
			return runner.Retryable(fmt.Errorf("slot %s on node %s is still in use", x.slot, x.node))
		}
		if err := api.DropSlot(ctx, x.db, x.slot); err != nil && api.SQLState(err) != "42704" {
			return fmt.Errorf("on node %s: %w", x.node, err)
		}
		log.Info("dropped a slot of the merge", "event", "init.slot_dropped", "node", x.node, "slot", x.slot)
	}
	return nil
}

// cancelMerge is init.cancel's part for a merge (nothing for another init): undecided two-phase
// commits rolled back, the subscriptions, slots and the target's publication dropped. The
// tables keep their rows (init_cancelled empties no table of a merge): pass 1 either committed
// on both nodes or on neither. teardown drops the source's publication afterwards.
func cancelMerge(ctx context.Context, job *runner.Job, plan *api.InitPlan, src *pgx.Conn, detail map[string]any, log *slog.Logger) error {
	mi, err := api.GetMergeInit(ctx, job.DB, plan.Target)
	if err != nil || mi == nil {
		return err
	}
	if src == nil {
		detail["source_cleanup_pending"] = fmt.Sprintf("source node %s unreachable: drop subscription %s and prepared transactions %s%s_* there by hand",
			plan.Source, mi.ReverseSubscription, gidPrefix, plan.Target)
		return nil
	}
	if n, err := resolvePrepared(ctx, job.DB, src, plan.Target); err != nil {
		return err
	} else if n > 0 {
		detail["prepared_resolved"] = n
	}
	if err := dropMergeLinks(ctx, job.DB, src, plan, mi, log); err != nil {
		return err
	}
	if err := api.DropPublication(ctx, job.DB, mi.ReversePublication); err != nil {
		return err
	}
	detail["merge_links_dropped"] = true
	return nil
}
