package model

import (
	"cmp"
	"fmt"
	"slices"
	"time"

	"github.com/steepdb/steep_repl/internal/api"
)

// MaxSnapshots is how many snapshots the snapshots view keeps (newest first).
const MaxSnapshots = 100

// Snapshot roles, as steep_repl.list_snapshots() names them.
const (
	// RoleGenerated is a snapshot generated on the node that lists it (its source).
	RoleGenerated = "generated"
	// RoleApplied is a snapshot applied to the node that lists it (a target).
	RoleApplied = "applied"
)

// Snapshots is the snapshots view.
type Snapshots struct {
	// Available is true once a connected node's extension has snapshot support.
	Available bool
	// Unsupported are the connected nodes whose extension has no snapshot support.
	Unsupported []string
	// Problems say, per node, why its snapshots could not be read ("node: reason").
	Problems []string
	// Items are the snapshots of every node the console reads, newest first.
	Items []SnapshotRow
}

// Find returns the snapshot whose Key is key, nil when it is not listed.
func (s Snapshots) Find(key string) *SnapshotRow {
	for i := range s.Items {
		if s.Items[i].Key == key {
			return &s.Items[i]
		}
	}
	return nil
}

// SnapshotRow is one snapshot: its generation on the source and its applications to
// targets, as the nodes the console reads record them.
type SnapshotRow struct {
	// Key identifies the row across refreshes: the snapshot id, or "node/job N" for an
	// application whose sidecar has not read the manifest (and so the id) yet.
	Key string
	// ID is the snapshot id ("" until known).
	ID string
	// Source is the node the snapshot is generated on ("" until known).
	Source string
	// Generation is nil when the console does not read the source node.
	Generation *SnapshotSide
	// Applications are the targets the snapshot is applied to, by node name.
	Applications []SnapshotSide
	// CreatedAt is when its newest side was requested.
	CreatedAt time.Time
}

// Active reports whether a side of the snapshot is under way.
func (r SnapshotRow) Active() bool {
	if r.Generation != nil && r.Generation.Active() {
		return true
	}
	return slices.ContainsFunc(r.Applications, SnapshotSide.Active)
}

// SnapshotSide is one side of a snapshot as the node that runs it records it: the
// generation (role generated, on the source) or an application (role applied, on a target).
type SnapshotSide struct {
	// Node is the node whose database records the side (its sidecar does the work).
	Node string
	// Stale is true when Node cannot be read now: this is what it said last.
	Stale bool
	// Info is the side's row of steep_repl.list_snapshots().
	Info api.SnapshotInfo
	// Progress is its job's row of steep_repl.snapshot_progress (nil: none written yet).
	Progress *api.SnapshotProgress
}

// Active reports whether the side is queued or running.
func (s SnapshotSide) Active() bool {
	switch s.Info.State {
	case "queued", "generating", "applying":
		return true
	}
	return false
}

// Generated reports whether the side is a generation (else an application).
func (s SnapshotSide) Generated() bool { return s.Info.Role == RoleGenerated }

// sides are the snapshots a reading lists, with their jobs' progress.
func sides(r *Reading) []SnapshotSide {
	out := make([]SnapshotSide, 0, len(r.SnapshotList))
	stale := r.Stale || r.Link != LinkOK
	for _, info := range r.SnapshotList {
		s := SnapshotSide{Node: r.LocalNode, Stale: stale, Info: info}
		if info.JobID != nil {
			if p, ok := r.SnapshotProgress[*info.JobID]; ok {
				s.Progress = &p
			}
		}
		out = append(out, s)
	}
	return out
}

// activeSides are the sides under way on a node, read live (for its SNAP marker).
func activeSides(r *Reading) []SnapshotSide {
	var out []SnapshotSide
	for _, s := range sides(r) {
		if s.Active() {
			out = append(out, s)
		}
	}
	return out
}

// snapshotsActive reports whether a reading has a snapshot side under way (polled every second).
func snapshotsActive(r Reading) bool {
	return len(activeSides(&r)) > 0
}

// snapshotKey is the row a side belongs to.
func snapshotKey(s SnapshotSide) string {
	if s.Info.ID != nil && *s.Info.ID != "" {
		return *s.Info.ID
	}
	if s.Info.JobID != nil {
		return fmt.Sprintf("%s/job %d", s.Node, *s.Info.JobID)
	}
	return s.Node + "/" + s.Info.Path
}

// mergeSnapshots assembles the snapshots view from each node's own reading: a snapshot's
// generation comes from its source, its applications from their targets.
func mergeSnapshots(owner map[string]*Reading) Snapshots {
	var out Snapshots
	rows := map[string]*SnapshotRow{}
	for _, name := range sortedKeys(owner) {
		r := owner[name]
		if r.Link == LinkOK && !r.Stale {
			switch {
			case !r.Server.HasSnapshots:
				out.Unsupported = append(out.Unsupported, name)
			case r.SnapshotProblem != "":
				out.Available = true
				out.Problems = append(out.Problems, name+": "+r.SnapshotProblem)
			default:
				out.Available = true
			}
		}
		for _, s := range sides(r) {
			key := snapshotKey(s)
			row := rows[key]
			if row == nil {
				row = &SnapshotRow{Key: key}
				rows[key] = row
			}
			if s.Info.ID != nil {
				row.ID = *s.Info.ID
			}
			if s.Generated() {
				if row.Generation == nil {
					row.Generation = &s
				}
				row.Source = s.Node
			} else {
				row.Applications = append(row.Applications, s)
				if row.Source == "" && s.Info.SourceNode != nil {
					row.Source = *s.Info.SourceNode
				}
			}
			if s.Info.CreatedAt.After(row.CreatedAt) {
				row.CreatedAt = s.Info.CreatedAt
			}
		}
	}
	for _, row := range rows {
		out.Items = append(out.Items, *row)
	}
	slices.SortFunc(out.Items, func(a, b SnapshotRow) int {
		if c := b.CreatedAt.Compare(a.CreatedAt); c != 0 {
			return c
		}
		return cmp.Compare(a.Key, b.Key)
	})
	if len(out.Items) > MaxSnapshots {
		out.Items = out.Items[:MaxSnapshots]
	}
	return out
}
