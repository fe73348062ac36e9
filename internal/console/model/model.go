package model

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
)

// Model owns the connections: one endpoint per node, seeded from Config.URLs and grown from
// the nodes registries. After every poll it merges the readings into a State and hands a
// copy to publish, which must not block (the console queues a draw).
type Model struct {
	cfg     Config
	publish func(State)

	mu       sync.Mutex
	ctx      context.Context
	eps      map[string]*endpoint
	retired  map[string]bool
	readings map[string]Reading
	focus    string
	wg       sync.WaitGroup
}

// New validates cfg and parses the seed URLs; nothing connects before Run.
func New(cfg Config, publish func(State)) (*Model, error) {
	cfg, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	if publish == nil {
		return nil, fmt.Errorf("console model: publish must not be nil")
	}
	m := &Model{cfg: cfg, publish: publish, eps: map[string]*endpoint{}, retired: map[string]bool{},
		readings: map[string]Reading{}}
	for i, url := range cfg.URLs {
		t, err := parseSeed(url, cfg)
		if err != nil {
			return nil, fmt.Errorf("--db #%d: %w", i+1, err)
		}
		if _, dup := m.eps[t.key]; !dup {
			m.eps[t.key] = newEndpoint(t, true, m)
		}
	}
	return m, nil
}

// Listening reports whether changes are LISTENed for (false: poll-only fallback).
func (m *Model) Listening() bool { return !m.cfg.NoListen }

// Run polls until ctx ends, then waits for the endpoints to stop.
func (m *Model) Run(ctx context.Context) error {
	m.mu.Lock()
	if m.ctx != nil {
		m.mu.Unlock()
		return fmt.Errorf("console model: Run called twice")
	}
	m.ctx = ctx
	for _, e := range m.eps {
		m.start(e)
	}
	m.mu.Unlock()
	<-ctx.Done()
	m.wg.Wait()
	return nil
}

// start runs an endpoint's goroutine; m.mu is held.
func (m *Model) start(e *endpoint) {
	ctx, cancel := context.WithCancel(m.ctx)
	e.cancel = cancel
	m.wg.Go(func() { e.run(ctx) })
}

// SetFocus names the node whose per-table progress and samples are read ("" for none) and
// has its endpoint poll at once. It never blocks on I/O: key handlers may call it.
func (m *Model) SetFocus(node string) {
	m.mu.Lock()
	m.focus = node
	e := m.endpointOf(node)
	m.mu.Unlock()
	if e != nil {
		e.poke()
	}
}

func (m *Model) focusNode() string {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.focus
}

// endpointOf is the live endpoint of node (nil when none); m.mu is held.
func (m *Model) endpointOf(node string) *endpoint {
	var best *endpoint
	for key, r := range m.readings {
		if r.LocalNode == node && node != "" {
			if e := m.eps[key]; e != nil && (best == nil || r.Link == LinkOK) {
				best = e
			}
		}
	}
	return best
}

// report stores an endpoint's reading, starts endpoints for newly found nodes, retires a
// found endpoint that turned out to reach a node already connected, and publishes.
func (m *Model) report(e *endpoint, r Reading) {
	m.mu.Lock()
	if m.ctx == nil || m.ctx.Err() != nil || m.eps[e.key] != e {
		m.mu.Unlock()
		return
	}
	// Two endpoints reaching one node (a --db URL and a registered conninfo naming the same
	// server differently): keep the seed, else the first by key.
	if r.LocalNode != "" {
		for key, other := range m.readings {
			oe := m.eps[key]
			if key == e.key || other.LocalNode != r.LocalNode || oe == nil {
				continue
			}
			switch {
			case !e.seed && (oe.seed || key < e.key):
				m.retire(e)
				m.mu.Unlock()
				return
			case !oe.seed:
				m.retire(oe)
			}
		}
	}
	m.readings[e.key] = r
	for name, cfg := range r.peerConfigs {
		t := newTarget(cfg, m.cfg)
		if m.eps[t.key] != nil || m.retired[t.key] || m.endpointOf(name) != nil {
			continue
		}
		ne := newEndpoint(t, false, m)
		m.eps[t.key] = ne
		m.start(ne)
	}
	readings := make([]Reading, 0, len(m.readings))
	for _, rd := range m.readings {
		readings = append(readings, rd)
	}
	st := Merge(readings, m.focus, !m.cfg.NoListen, time.Now())
	m.mu.Unlock()
	m.publish(st)
}

// retire stops a discovered endpoint for good; m.mu is held.
func (m *Model) retire(e *endpoint) {
	e.cancel()
	delete(m.eps, e.key)
	delete(m.readings, e.key)
	m.retired[e.key] = true
}

// peers turns a registry's conninfos into connection configs, skipping the local node.
// A conninfo that does not parse yields a Peer without a key and a reason that never
// quotes it (it may hold a password).
func (m *Model) peers(conninfos map[string]string, local string) (map[string]Peer, map[string]*pgx.ConnConfig) {
	peers := map[string]Peer{}
	cfgs := map[string]*pgx.ConnConfig{}
	for name, conninfo := range conninfos {
		if name == local {
			continue
		}
		cfg, err := pgx.ParseConfig(conninfo)
		if err != nil {
			peers[name] = Peer{Reason: "its registered conninfo does not parse"}
			continue
		}
		t := newTarget(cfg, m.cfg)
		peers[name] = Peer{Key: t.key, Addr: t.addr}
		cfgs[name] = cfg
	}
	return peers, cfgs
}
