package model

import (
	"time"

	"github.com/steepdb/steep_repl/internal/api"
)

// Link says whether the console can read a node.
type Link int

// Link values, from best to worst.
const (
	// LinkOK: connected, the row is live.
	LinkOK Link = iota
	// LinkConnecting: a connection is being made for the first time.
	LinkConnecting
	// LinkError: connected, but reading the node fails (e.g. the extension is missing).
	LinkError
	// LinkUnreachable: the node does not answer; it is retried with backoff.
	LinkUnreachable
	// LinkNotConnected: the console has no way to connect (conninfo not readable).
	LinkNotConnected
)

// String names the link the way the console shows it.
func (l Link) String() string {
	switch l {
	case LinkOK:
		return "ok"
	case LinkConnecting:
		return "connecting"
	case LinkError:
		return "error"
	case LinkUnreachable:
		return "unreachable"
	case LinkNotConnected:
		return "not connected"
	}
	return "?"
}

// State is everything the console draws, a copy handed to the UI.
type State struct {
	// At is when the state was assembled.
	At time.Time
	// Listening is true when the console LISTENs for events (false: poll-only fallback).
	Listening bool
	// Nodes are the rows of the nodes view, ordered by name.
	Nodes []NodeRow
	// Detail is the selected node's detail, when one was asked for (see Model.SetFocus).
	Detail *Detail
	// Events are the newest events of every connected node's log, newest first.
	Events []EventRow
	// Conflicts are the subscriptions of every connected node with their conflict counters.
	Conflicts []ConflictRow
	// Snapshots is what is known about snapshots.
	Snapshots Snapshots
	// Duties are the supervisor duties of every node read live, failing ones first.
	Duties []DutyRow
}

// DutyRow is one duty of a node's supervisor (steep_repl.supervisor_duties).
type DutyRow struct {
	// Node is the node whose tick() runs the duty.
	Node string
	api.Duty
}

// FailingDuties are the rows of duties that keep failing.
func (s State) FailingDuties() []DutyRow {
	var out []DutyRow
	for _, d := range s.Duties {
		if d.Failing() {
			out = append(out, d)
		}
	}
	return out
}

// NodeRow is one row of the nodes view.
type NodeRow struct {
	Name string
	// Addr is host:port of the connection the console uses ("" when unknown).
	Addr string
	// Role: "local" (given with --db), "remote" (found in the registry), plus "source of X".
	Role string
	Link Link
	// LinkReason says why the link is not ok (never holds a password).
	LinkReason string
	// State is the init state, lowercase ("" when unknown).
	State string
	// StateStale is true when State is not read live from the node itself: the last state
	// seen before it became unreachable, or what another node's registry records.
	StateStale bool
	// StateChangedAt is when the state last changed (zero when unknown).
	StateChangedAt time.Time
	// Source is the node this one is (being) initialized from, "" for none.
	Source string
	// LastError is the node's last init error.
	LastError string
	// Progress is the active (or failed) init's progress; nil when there is none.
	Progress *api.InitProgress
	// LagBytes is the apply lag: WAL the node's source wrote that the node has not confirmed.
	LagBytes *int64
	// ServerVersion is server_version_num (0 when unknown).
	ServerVersion int
	// Conflicts is the sum of the data-conflict counters (api.IsDataConflict: origin_differs
	// excluded) of the node's subscriptions; nil when not available (before PostgreSQL 18, or
	// not connected).
	Conflicts *int64
	// SnapshotsUnsupported is true when the node was read and its extension has no snapshot
	// support (it predates snapshots).
	SnapshotsUnsupported bool
	// Snapshots are the snapshot sides being generated or applied on the node now (queued
	// ones included), read live from the node; the SNAP column marks them.
	Snapshots []SnapshotSide
	// Endpoint is the key of the connection the row is read through ("" for a node known
	// only from another node's registry): the actions on the node use it.
	Endpoint string
	// SnapshotRoot is the node's steep_repl.snapshot_root ("" when unset or unknown).
	SnapshotRoot string
}

// Detail is the detail overlay of one node.
type Detail struct {
	Node     string
	Row      NodeRow
	Progress *api.InitProgress
	Tables   []api.InitTable
	// Samples are the last 60 s of progress samples, oldest first.
	Samples []api.InitSample
}

// EventRow is an event of one node's log.
type EventRow struct {
	// Log is the node whose steep_repl.events holds the row.
	Log string
	api.Event
}

// ConflictRow is one subscription with its conflict counters.
type ConflictRow struct {
	Node         string
	Subscription string
	// Counts is in the order of api.ConflictTypes; nil when the server has no counters.
	Counts        []int64
	ServerVersion int
}

// Active reports whether state is an init under way (polled every second).
func Active(state string) bool {
	switch state {
	case api.StatePreparing, api.StateCopying, api.StateCatchingUp, api.StateReinitializing:
		return true
	}
	return false
}
