package model

import (
	"cmp"
	"slices"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/steepdb/steep_repl/internal/api"
)

// MaxEvents is how many events the events view keeps (newest first, all logs together).
const MaxEvents = 50

// Reading is what the last poll of one endpoint (one node's database) found. The endpoint
// hands a fresh Reading to the model after every poll; nothing in it is shared.
type Reading struct {
	// Key identifies the endpoint: host:port/database.
	Key string
	// Addr is host:port.
	Addr string
	// Seed is true for a node given with --db, false for one found in a registry.
	Seed bool
	Link Link
	// Reason says why Link is not ok.
	Reason string
	// Stale is true when the data below is from the last successful poll, not this one.
	Stale bool
	// LocalNode is the database's own node (is_local), "" until known.
	LocalNode string
	Server    api.ServerInfo
	Registry  []api.Node
	// Peers are the registered nodes this endpoint could connect to, by name.
	Peers map[string]Peer
	// Progress is the local node's init progress (nil: none).
	Progress *api.InitProgress
	// Focus is the node whose tables and samples were read ("" for none).
	Focus   string
	Tables  []api.InitTable
	Samples []api.InitSample
	Subs    []api.SubscriptionStats
	// Slots is the lag in bytes of each logical slot on this server.
	Slots  map[string]int64
	Events []api.Event
	// SnapshotList is the node's steep_repl.list_snapshots() (nil without snapshot support).
	SnapshotList []api.SnapshotInfo
	// SnapshotProgress is the progress of those snapshots' jobs, by job id.
	SnapshotProgress map[int64]api.SnapshotProgress
	// SnapshotProblem says why the node's snapshots could not be read ("" when they were).
	SnapshotProblem string
	// Duties are the supervisor's duties (nil without the table or the right to read it);
	// their errors are redacted of the passwords the console knows.
	Duties []api.Duty
	At     time.Time

	// peerConfigs are the Peers' connection configs (they may hold passwords: never shown).
	peerConfigs map[string]*pgx.ConnConfig
}

// Peer is another node as this endpoint's registry describes it.
type Peer struct {
	// Key and Addr name the endpoint that reaches the node ("" when its conninfo is unusable).
	Key, Addr string
	// Reason says why Key is empty.
	Reason string
}

// notConnectedReason is why a node found in a registry has no connection.
const notConnectedReason = "its conninfo is readable by superusers only: add --db for this node"

// Merge assembles the state the UI draws from the readings of every endpoint: one row per
// node, preferring what a node says about itself over what another node's registry records.
// focus is the node whose detail is wanted ("" for none). It is a pure function.
func Merge(readings []Reading, focus string, listening bool, now time.Time) State {
	rs := slices.Clone(readings)
	slices.SortFunc(rs, func(a, b Reading) int {
		if a.Seed != b.Seed {
			if a.Seed {
				return -1
			}
			return 1
		}
		return cmp.Compare(a.Key, b.Key)
	})
	byKey := map[string]*Reading{}
	owner := map[string]*Reading{}
	for i := range rs {
		r := &rs[i]
		byKey[r.Key] = r
		if r.LocalNode == "" {
			continue
		}
		if prev, ok := owner[r.LocalNode]; ok && !(prev.Link != LinkOK && r.Link == LinkOK) {
			continue
		}
		owner[r.LocalNode] = r
	}
	rows := map[string]*NodeRow{}
	matched := map[string]bool{}
	for name, r := range owner {
		rows[name] = ownRow(r)
		matched[r.Key] = true
	}
	for i := range rs {
		r := &rs[i]
		if r.Link != LinkOK || r.Stale {
			continue
		}
		for _, n := range r.Registry {
			if _, ok := rows[n.Name]; ok || n.IsLocal {
				continue
			}
			row := &NodeRow{Name: n.Name, Role: "remote", State: n.InitState, StateStale: true,
				StateChangedAt: n.StateChangedAt, Source: deref(n.InitSource), LastError: deref(n.LastError)}
			if p, ok := r.Peers[n.Name]; ok && p.Key == "" {
				row.Link, row.LinkReason = LinkNotConnected, p.Reason
			} else if ok {
				row.Addr = p.Addr
				matched[p.Key] = true
				row.Link, row.LinkReason = LinkConnecting, ""
				if ep := byKey[p.Key]; ep != nil {
					row.Link, row.LinkReason = ep.Link, ep.Reason
				}
			} else {
				row.Link, row.LinkReason = LinkNotConnected, notConnectedReason
			}
			rows[n.Name] = row
		}
	}
	for i := range rs {
		r := &rs[i]
		if r.LocalNode == "" && !matched[r.Key] {
			name := "(" + r.Addr + ")"
			rows[name] = &NodeRow{Name: name, Addr: r.Addr, Role: role(r.Seed), Link: r.Link, LinkReason: r.Reason,
				Endpoint: r.Key, SnapshotRoot: r.Server.SnapshotRoot}
		}
	}
	for _, row := range rows {
		if r := owner[row.Name]; r != nil && !row.StateStale {
			row.LagBytes = applyLag(r, row, owner, rs)
		}
	}
	st := State{At: now, Listening: listening}
	for _, name := range sortedKeys(rows) {
		row := rows[name]
		for _, other := range sortedKeys(rows) {
			if rows[other].Source == name {
				row.Role += ", source of " + other
			}
		}
		st.Nodes = append(st.Nodes, *row)
	}
	st.Events = mergeEvents(owner)
	st.Conflicts = conflictRows(owner)
	st.Snapshots = mergeSnapshots(owner)
	st.Duties = mergeDuties(rs, owner)
	if r := owner[focus]; r != nil && rows[focus] != nil {
		d := &Detail{Node: focus, Row: *rows[focus]}
		if r.Focus == focus {
			d.Progress, d.Tables, d.Samples = r.Progress, r.Tables, r.Samples
		}
		st.Detail = d
	} else if row := rows[focus]; row != nil {
		st.Detail = &Detail{Node: focus, Row: *row}
	}
	return st
}

// ownRow is a node's row from its own database.
func ownRow(r *Reading) *NodeRow {
	row := &NodeRow{Name: r.LocalNode, Addr: r.Addr, Role: role(r.Seed), Link: r.Link, LinkReason: r.Reason,
		ServerVersion: r.Server.VersionNum, StateStale: r.Stale || r.Link != LinkOK,
		Endpoint: r.Key, SnapshotRoot: r.Server.SnapshotRoot}
	for _, n := range r.Registry {
		if n.IsLocal && n.Name == r.LocalNode {
			row.State, row.StateChangedAt = n.InitState, n.StateChangedAt
			row.Source, row.LastError = deref(n.InitSource), deref(n.LastError)
		}
	}
	if row.StateStale {
		return row
	}
	if p := r.Progress; p != nil && (Active(row.State) || row.State == api.StateFailed) {
		row.Progress = p
	}
	row.SnapshotsUnsupported = !r.Server.HasSnapshots
	row.Snapshots = activeSides(r)
	if r.Server.VersionNum >= api.ConflictCountersMinVersion {
		var sum int64
		for _, s := range r.Subs {
			sum += api.DataConflicts(s.Conflicts)
		}
		row.Conflicts = &sum
	}
	return row
}

func role(seed bool) string {
	if seed {
		return "local"
	}
	return "remote"
}

// applyLag is the largest lag of the slots behind the node's subscriptions, read on the
// node's source first, else on any other connected node; else the init's own measurement.
func applyLag(r *Reading, row *NodeRow, owner map[string]*Reading, rs []Reading) *int64 {
	var lag *int64
	for _, s := range r.Subs {
		if s.SlotName == nil {
			continue
		}
		candidates := []*Reading{owner[row.Source]}
		for i := range rs {
			candidates = append(candidates, &rs[i])
		}
		for _, c := range candidates {
			if c == nil || c == r || c.Link != LinkOK || c.Stale {
				continue
			}
			if v, ok := c.Slots[*s.SlotName]; ok {
				if lag == nil || v > *lag {
					lag = &v
				}
				break
			}
		}
	}
	if lag == nil && row.Progress != nil && row.Progress.LagBytes != nil {
		v := *row.Progress.LagBytes
		lag = &v
	}
	return lag
}

func mergeEvents(owner map[string]*Reading) []EventRow {
	var out []EventRow
	for name, r := range owner {
		for _, e := range r.Events {
			out = append(out, EventRow{Log: name, Event: e})
		}
	}
	slices.SortFunc(out, func(a, b EventRow) int {
		if c := b.At.Compare(a.At); c != 0 {
			return c
		}
		if c := strings.Compare(a.Log, b.Log); c != 0 {
			return c
		}
		return cmp.Compare(b.ID, a.ID)
	})
	if len(out) > MaxEvents {
		out = out[:MaxEvents]
	}
	return out
}

func conflictRows(owner map[string]*Reading) []ConflictRow {
	var out []ConflictRow
	for _, name := range sortedKeys(owner) {
		r := owner[name]
		if r.Link != LinkOK || r.Stale {
			continue
		}
		for _, s := range r.Subs {
			out = append(out, ConflictRow{Node: name, Subscription: s.Name, Counts: s.Conflicts,
				ServerVersion: r.Server.VersionNum})
		}
	}
	return out
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

func deref(s *string) string {
	if s == nil {
		return ""
	}
	return *s
}
