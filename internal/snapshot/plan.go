package snapshot

import (
	"cmp"
	"fmt"
	"slices"
	"strings"
	"sync"
)

// Plan hands tables to parallel loaders, heaviest first, so that a table starts only once
// every table it references by a foreign key (among the tables being loaded) is loaded: the
// foreign-key-safe order for targets whose tables already have their constraints.
type Plan struct {
	mu       sync.Mutex
	cond     *sync.Cond
	waiting  map[string]int
	children map[string][]string
	weight   map[string]int64
	ready    []string
	running  int
	blocked  map[string]string
	stopped  bool
}

// NewPlan builds a plan for tables (name -> weight) and foreign keys (child, parent).
// Self-references and references to tables outside the plan impose nothing. A cycle of
// foreign keys is an error naming its tables.
func NewPlan(tables map[string]int64, fks [][2]string) (*Plan, error) {
	p := &Plan{waiting: map[string]int{}, children: map[string][]string{}, weight: tables, blocked: map[string]string{}}
	p.cond = sync.NewCond(&p.mu)
	seen := map[[2]string]bool{}
	for _, e := range fks {
		child, parent := e[0], e[1]
		_, okc := tables[child]
		_, okp := tables[parent]
		if !okc || !okp || child == parent || seen[e] {
			continue
		}
		seen[e] = true
		p.waiting[child]++
		p.children[parent] = append(p.children[parent], child)
	}
	if cyc := p.cycle(); len(cyc) > 0 {
		return nil, fmt.Errorf("foreign keys form a cycle among %s: load them with the constraints dropped, or apply into an empty database (the snapshot then adds the foreign keys after loading)",
			strings.Join(cyc, ", "))
	}
	for t := range tables {
		if p.waiting[t] == 0 {
			p.ready = append(p.ready, t)
		}
	}
	p.sortReady()
	return p, nil
}

// cycle returns the tables Kahn's algorithm cannot order (those on or behind a cycle).
func (p *Plan) cycle() []string {
	w := map[string]int{}
	var queue []string
	for t := range p.weight {
		w[t] = p.waiting[t]
		if w[t] == 0 {
			queue = append(queue, t)
		}
	}
	for len(queue) > 0 {
		t := queue[0]
		queue = queue[1:]
		for _, c := range p.children[t] {
			if w[c]--; w[c] == 0 {
				queue = append(queue, c)
			}
		}
	}
	var left []string
	for t, n := range w {
		if n > 0 {
			left = append(left, t)
		}
	}
	slices.Sort(left)
	return left
}

func (p *Plan) sortReady() {
	slices.SortFunc(p.ready, func(a, b string) int {
		return cmp.Or(cmp.Compare(p.weight[b], p.weight[a]), cmp.Compare(a, b))
	})
}

// Next returns the next table to load, waiting while the only tables left wait for
// running ones; false when nothing is left to hand out (or Stop was called).
func (p *Plan) Next() (string, bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	for {
		if p.stopped {
			return "", false
		}
		if len(p.ready) > 0 {
			t := p.ready[0]
			p.ready = p.ready[1:]
			p.running++
			return t, true
		}
		if p.running == 0 {
			return "", false
		}
		p.cond.Wait()
	}
}

// Done reports a table handed out by Next as loaded (ok) or failed; the tables that
// reference a failed one are blocked and never handed out.
func (p *Plan) Done(table string, ok bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.running--
	if ok {
		for _, c := range p.children[table] {
			if p.waiting[c]--; p.waiting[c] == 0 {
				if _, b := p.blocked[c]; !b {
					p.ready = append(p.ready, c)
				}
			}
		}
		p.sortReady()
	} else {
		p.block(table, table)
	}
	p.cond.Broadcast()
}

func (p *Plan) block(table, cause string) {
	for _, c := range p.children[table] {
		if _, b := p.blocked[c]; !b {
			p.blocked[c] = cause
			p.block(c, cause)
		}
	}
}

// Stop makes every Next return false.
func (p *Plan) Stop() {
	p.mu.Lock()
	p.stopped = true
	p.mu.Unlock()
	p.cond.Broadcast()
}

// Blocked returns the tables never handed out because a table they reference failed, with that table.
func (p *Plan) Blocked() map[string]string {
	p.mu.Lock()
	defer p.mu.Unlock()
	out := make(map[string]string, len(p.blocked))
	for k, v := range p.blocked {
		out[k] = v
	}
	return out
}
