package nodeinit

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"sync"
	"time"

	"github.com/steepdb/steep_repl/internal/api"
)

// The merge's change capture (merge_changes.go): made just before the first plan, read after
// pass 1 (outside the lock, most of the WAL) and under the write freeze's lock (the lock stops
// the writes, so that read ends), dropped once the freeze committed or the merge ends.

// captureSlot is the name of the capture slot of the merge whose subscription slot is slot.
func captureSlot(slot string) string {
	if n := slot + "_cap"; len(n) <= 63 {
		return n
	}
	h := sha256.Sum256([]byte(slot))
	return "sr_cap_" + hex.EncodeToString(h[:16])
}

// capture is the state of the merge's change capture: what each node changed so far, and why
// it can no longer be trusted (a read that failed part way consumed changes it did not record),
// in which case every freeze re-plans whole.
type capture struct {
	target, source *changeSet
	broken         string
	rows           map[string]int64 // each table's estimated rows on the target, read before the first freeze
}

// preparePublications creates (or sets) each node's publication of the merge: before the
// capture slots, whose changes are decoded with the catalogs of their LSN.
func (m *mergeRun) preparePublications(ctx context.Context) error {
	if _, err := EnsurePublication(ctx, m.src, m.plan.Publication, m.tables); err != nil {
		return fmt.Errorf("on source node %s: %w", m.plan.Source, err)
	}
	if _, err := EnsurePublication(ctx, m.job.DB, m.mi.ReversePublication, m.tables); err != nil {
		return fmt.Errorf("on node %s: %w", m.plan.Target, err)
	}
	return nil
}

// startCapture creates the capture slot on each node, each bounded by freeze_timeout (it waits
// for the transactions with an xid running now: every commit after its consistent point is
// decoded, every one before it is seen by the plan that follows). When a transaction stays
// open longer, the merge goes on without a capture: its freeze re-plans every table whole.
func (m *mergeRun) startCapture(ctx context.Context) error {
	if err := m.preparePublications(ctx); err != nil {
		return err
	}
	bound := seconds(m.set.FreezeTimeout)
	for _, x := range []struct {
		db         api.TxBeginner
		node, slot string
	}{{m.job.DB, m.plan.Target, captureSlot(m.mi.ReverseSlot)}, {m.src, m.plan.Source, captureSlot(m.plan.SlotName)}} {
		if _, err := createSlotBounded(ctx, x.db, x.slot, bound); err != nil {
			m.dropCapture()
			if !freezeTimedOut(err) || ctx.Err() != nil {
				return fmt.Errorf("on node %s: capture slot: %w", x.node, err)
			}
			m.log.Warn("a transaction stayed open past freeze_timeout: no change capture, the write freeze re-plans every table whole",
				"event", "init.merge_capture_unavailable", "node", x.node, "error", err.Error())
			return nil
		}
	}
	m.capture = &capture{target: newChangeSet(maxChangedKeys), source: newChangeSet(maxChangedKeys)}
	return nil
}

// drain reads both capture slots at once into the capture. After a failure the capture is
// broken (the freeze re-plans whole) and the error returned.
func (m *mergeRun) drain(ctx context.Context) (time.Duration, error) {
	started := time.Now()
	if m.capture == nil || m.capture.broken != "" {
		return 0, nil
	}
	bound := seconds(m.set.StatementTimeout)
	var wg sync.WaitGroup
	var terr, serr error
	wg.Add(2)
	go func() {
		defer wg.Done()
		terr = api.MergeDrainChanges(ctx, m.job.DB, captureSlot(m.mi.ReverseSlot), m.mi.ReversePublication, bound, m.capture.target.add)
	}()
	go func() {
		defer wg.Done()
		serr = api.MergeDrainChanges(ctx, m.src, captureSlot(m.plan.SlotName), m.plan.Publication, bound, m.capture.source.add)
	}()
	wg.Wait()
	err := terr
	if terr != nil {
		err = fmt.Errorf("on node %s: %w", m.plan.Target, terr)
	} else if serr != nil {
		err = fmt.Errorf("on source node %s: %w", m.plan.Source, serr)
	}
	if err != nil {
		m.capture.broken = err.Error()
		m.log.Warn("the change capture failed: the write freeze re-plans every table whole", "event", "init.merge_capture_broken", "error", err.Error())
	}
	return time.Since(started), err
}

// dropCapture drops both capture slots, where they exist (the merge no longer reads them).
func (m *mergeRun) dropCapture() {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for _, x := range []struct {
		db   api.DB
		node string
		slot string
	}{{m.src, m.plan.Source, captureSlot(m.plan.SlotName)}, {m.job.DB, m.plan.Target, captureSlot(m.mi.ReverseSlot)}} {
		if err := api.DropSlot(ctx, x.db, x.slot); err != nil && api.SQLState(err) != "42704" {
			m.log.Warn("could not drop a capture slot of the merge", "event", "init.merge_slot_left", "node", x.node, "slot", x.slot, "error", err.Error())
		}
	}
	m.capture = nil
}
