package nodeinit

import (
	"encoding/json"
	"fmt"
	"sort"

	"github.com/jackc/pglogrepl"
)

// The write freeze re-checks only what changed since the first plan: a logical slot of the
// merge's own on each node (merge_changes_capture.go) decodes every user commit after the plan's read
// (its creation waited for the transactions then running, like the baseline); changeSet
// collects from those pgoutput messages, per table, the keys that were inserted, updated
// (old and new key) or deleted. A table it cannot name keys of exactly is re-planned whole.

// maxChangedKeys is how many changed keys of one table are collected at most; past it the
// table is re-planned whole. keyedRatio: a key re-read costs about what keyedRatio rows of a
// whole pass do (30 µs against 5.5 µs, 100 000 keys of a 200 000-row table: 3.2 s keyed,
// 1.1 s whole), so a table with more changed keys than its rows / keyedRatio (and more than
// minKeyed) is re-planned whole too.
const (
	maxChangedKeys = 100000
	keyedRatio     = 5
	minKeyed       = 1000
)

// keyedCheaper: re-checking n keys of a table of about rows rows (-1: not known) by key costs
// less than re-planning it whole.
func keyedCheaper(n int, rows int64) bool {
	return n <= minKeyed || rows < 0 || int64(n)*keyedRatio <= rows
}

// pgoutput's type oids of json and jsonb: a key of these cannot be named by its text (the
// re-check would parse the text as a JSON string).
const (
	oidJSON  = 114
	oidJSONB = 3802
)

// capturedRel is a relation as a node's pgoutput described it: its table and key columns.
type capturedRel struct {
	table string // "schema.table", as the merge's options name it
	keys  []int  // positions of the key columns (flag 1)
	names []string
	whole string // why keys of it cannot be used, if they cannot
}

// changeSet is what changed on one node, per table: the keys, or why the table goes whole.
type changeSet struct {
	rels  map[uint32]*capturedRel
	keys  map[string]map[string]json.RawMessage // table -> key JSON -> key
	whole map[string]string                     // table -> reason
	limit int
}

func newChangeSet(limit int) *changeSet {
	return &changeSet{rels: map[uint32]*capturedRel{}, keys: map[string]map[string]json.RawMessage{}, whole: map[string]string{}, limit: limit}
}

// add takes one pgoutput message.
func (c *changeSet) add(data []byte) error {
	msg, err := pglogrepl.Parse(data)
	if err != nil {
		return fmt.Errorf("decode a change: %w", err)
	}
	switch m := msg.(type) {
	case *pglogrepl.RelationMessage:
		c.relation(m)
	case *pglogrepl.InsertMessage:
		return c.tuple(m.RelationID, m.Tuple)
	case *pglogrepl.UpdateMessage:
		if m.OldTuple != nil { // the key changed (K), or replica identity full (O)
			if err := c.tuple(m.RelationID, m.OldTuple); err != nil {
				return err
			}
		}
		return c.tuple(m.RelationID, m.NewTuple)
	case *pglogrepl.DeleteMessage:
		return c.tuple(m.RelationID, m.OldTuple)
	case *pglogrepl.TruncateMessage:
		for _, id := range m.RelationIDs {
			r, ok := c.rels[id]
			if !ok {
				return fmt.Errorf("a truncate of relation %d, not described before", id)
			}
			c.goWhole(r.table, "truncated")
		}
	}
	return nil
}

func (c *changeSet) relation(m *pglogrepl.RelationMessage) {
	r := &capturedRel{table: m.Namespace + "." + m.RelationName}
	for i, col := range m.Columns {
		if col.Flags&1 == 0 {
			continue
		}
		r.keys = append(r.keys, i)
		r.names = append(r.names, col.Name)
		if col.DataType == oidJSON || col.DataType == oidJSONB {
			r.whole = "a key column of type json or jsonb"
		}
	}
	// Default (the primary key) or full (every column, the primary key among them): the
	// re-check reads the primary key's columns of the key objects. An index or nothing does not
	// name the primary key.
	switch {
	case m.ReplicaIdentity != 'd' && m.ReplicaIdentity != 'f':
		r.whole = fmt.Sprintf("replica identity %q does not name the primary key", string(rune(m.ReplicaIdentity)))
	case len(r.keys) == 0:
		r.whole = "no key columns"
	}
	c.rels[m.RelationID] = r
}

// tuple records the key of one row image of relation id.
func (c *changeSet) tuple(id uint32, t *pglogrepl.TupleData) error {
	r, ok := c.rels[id]
	if !ok {
		return fmt.Errorf("a change of relation %d, not described before", id)
	}
	if _, done := c.whole[r.table]; done {
		return nil
	}
	if r.whole != "" {
		c.goWhole(r.table, r.whole)
		return nil
	}
	if t == nil {
		c.goWhole(r.table, "a change without its key")
		return nil
	}
	key := make(map[string]*string, len(r.keys))
	for j, i := range r.keys {
		if i >= len(t.Columns) {
			return fmt.Errorf("a change of %s with %d columns, key column %d", r.table, len(t.Columns), i)
		}
		col := t.Columns[i]
		switch col.DataType {
		case pglogrepl.TupleDataTypeText:
			v := string(col.Data)
			key[r.names[j]] = &v
		case pglogrepl.TupleDataTypeNull:
			key[r.names[j]] = nil // only a column of replica identity full outside the primary key
		default: // unchanged toasted value or binary: the key is not in the message
			c.goWhole(r.table, "a key column's value not in the change")
			return nil
		}
	}
	k, err := json.Marshal(key) // a map's keys are sorted: one text per key
	if err != nil {
		return err
	}
	set := c.keys[r.table]
	if set == nil {
		set = map[string]json.RawMessage{}
		c.keys[r.table] = set
	}
	set[string(k)] = k
	if len(set) > c.limit {
		c.goWhole(r.table, fmt.Sprintf("more than %d keys changed", c.limit))
	}
	return nil
}

func (c *changeSet) goWhole(table, why string) {
	if _, done := c.whole[table]; !done {
		c.whole[table] = why
	}
	delete(c.keys, table)
}

// recheckSet is what the write freeze re-plans from the changes of both nodes: per table its
// changed keys (sorted), or nil for a table re-planned whole (whole says why); a table that
// changed on neither node is not in it. changed counts each node's changed keys (a key changed
// on both counts twice), rechecked the keys re-read (each once).
type recheckSet struct {
	keys               map[string][]json.RawMessage
	whole              map[string]string
	changed, rechecked int
}

func recheck(rows map[string]int64, sets ...*changeSet) recheckSet {
	r := recheckSet{keys: map[string][]json.RawMessage{}, whole: map[string]string{}}
	for _, s := range sets {
		for t, why := range s.whole {
			if _, ok := r.whole[t]; !ok {
				r.whole[t] = why
			}
		}
	}
	union := map[string]map[string]json.RawMessage{}
	for _, s := range sets {
		for t, ks := range s.keys {
			if _, ok := r.whole[t]; ok {
				continue
			}
			r.changed += len(ks)
			u := union[t]
			if u == nil {
				u = map[string]json.RawMessage{}
				union[t] = u
			}
			for k, v := range ks {
				u[k] = v
			}
		}
	}
	for t := range r.whole {
		r.keys[t] = nil
	}
	for t, u := range union {
		est, known := rows[t]
		if !known {
			est = -1
		}
		if len(u) > maxChangedKeys || !keyedCheaper(len(u), est) {
			r.whole[t] = fmt.Sprintf("%d keys changed of about %d rows: re-planned whole, which costs less", len(u), est)
			r.keys[t] = nil
			continue
		}
		list := make([]string, 0, len(u))
		for k := range u {
			list = append(list, k)
		}
		sort.Strings(list)
		out := make([]json.RawMessage, len(list))
		for i, k := range list {
			out[i] = u[k]
		}
		r.keys[t] = out
		r.rechecked += len(out)
	}
	return r
}
