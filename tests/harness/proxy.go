package harness

import (
	"errors"
	"fmt"
	"net"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// ProxyMode is what a Proxy does with the traffic between a peer and a node.
type ProxyMode int

// The modes of a Proxy; Set switches between them at any time.
const (
	// ProxyForward forwards both ways. Connections held by ProxyBlackhole go on where they stopped.
	ProxyForward ProxyMode = iota
	// ProxyRefuse closes the listener: a new connection gets ECONNREFUSED (a server that is
	// down). Connections already open keep forwarding; Set(ProxyReset) first to cut them too.
	ProxyRefuse
	// ProxyReset resets every open connection (both sides get a TCP RST) and every new one
	// as soon as it is accepted.
	ProxyReset
	// ProxyBlackhole accepts connections and keeps them open but forwards nothing either way,
	// not even a close: a peer that is up and never answers. Held data flows again on
	// ProxyForward.
	ProxyBlackhole
)

func (m ProxyMode) String() string {
	switch m {
	case ProxyForward:
		return "forward"
	case ProxyRefuse:
		return "refuse"
	case ProxyReset:
		return "reset"
	case ProxyBlackhole:
		return "blackhole"
	}
	return fmt.Sprintf("ProxyMode(%d)", int(m))
}

// Proxy is a TCP proxy on 127.0.0.1 in front of a node, for network faults: register the
// node on its peer with the proxy's Port instead of the node's, then Set a mode. StartProxy
// starts it and t.Cleanup closes it.
type Proxy struct {
	addr   string // the listening address, kept across ProxyRefuse
	target string

	mu       sync.Mutex
	mode     ProxyMode
	changed  chan struct{} // closed and replaced at every Set: wakes held connections
	listener net.Listener  // nil while refusing or closed
	conns    map[*proxyConn]struct{}
	closed   bool
	wg       sync.WaitGroup

	fromTarget atomic.Int64 // bytes forwarded from the target to its clients
}

// proxyConn is one accepted connection and, once dialled, its connection to the target.
type proxyConn struct {
	client, server net.Conn
	dead           bool // reset or closed: its goroutines stop
}

// StartProxy listens on a free port of 127.0.0.1 and forwards to target ("host:port") in
// mode. target may be "" for a peer that only refuses, resets or blackholes.
func StartProxy(t testing.TB, target string, mode ProxyMode) *Proxy {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("start proxy to %s: %v", target, err)
	}
	p := &Proxy{addr: l.Addr().String(), target: target, mode: ProxyForward, changed: make(chan struct{}),
		conns: map[*proxyConn]struct{}{}}
	p.serve(l)
	t.Cleanup(p.Close)
	if mode != ProxyForward {
		p.Set(t, mode)
	}
	return p
}

// Port is the proxy's port on 127.0.0.1.
func (p *Proxy) Port() int {
	_, port, _ := net.SplitHostPort(p.addr)
	var n int
	fmt.Sscan(port, &n)
	return n
}

// Mode is the current mode.
func (p *Proxy) Mode() ProxyMode {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.mode
}

// BytesFromTarget is how many bytes the proxy forwarded from its target to the peer so far:
// what a node sent its peer through it.
func (p *Proxy) BytesFromTarget() int64 { return p.fromTarget.Load() }

// Conns is how many connections the proxy holds open now.
func (p *Proxy) Conns() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.conns)
}

// Set switches the proxy to mode; it fails the test when the port cannot be listened on
// again after ProxyRefuse.
func (p *Proxy) Set(t testing.TB, mode ProxyMode) {
	t.Helper()
	if err := p.set(mode); err != nil {
		t.Fatalf("proxy %s: %v", p.addr, err)
	}
}

func (p *Proxy) set(mode ProxyMode) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return errors.New("proxy is closed")
	}
	if mode == ProxyRefuse && p.listener != nil {
		p.listener.Close()
		p.listener = nil
	}
	if mode != ProxyRefuse && p.listener == nil {
		l, err := listenAgain(p.addr)
		if err != nil {
			return fmt.Errorf("listen again after refusing: %w", err)
		}
		p.serveLocked(l)
	}
	if mode == ProxyReset {
		for c := range p.conns {
			c.kill()
		}
	}
	p.mode = mode
	close(p.changed)
	p.changed = make(chan struct{})
	return nil
}

// listenAgain binds addr again (Go sets SO_REUSEADDR, so connections of the previous listener
// in TIME_WAIT do not keep it), retrying briefly.
func listenAgain(addr string) (net.Listener, error) {
	var err error
	for range 50 {
		var l net.Listener
		if l, err = net.Listen("tcp", addr); err == nil {
			return l, nil
		}
		time.Sleep(20 * time.Millisecond)
	}
	return nil, err
}

// Close stops the proxy and closes every connection.
func (p *Proxy) Close() {
	p.mu.Lock()
	if !p.closed {
		p.closed = true
		if p.listener != nil {
			p.listener.Close()
			p.listener = nil
		}
		for c := range p.conns {
			c.kill()
		}
		close(p.changed)
		p.changed = make(chan struct{})
	}
	p.mu.Unlock()
	p.wg.Wait()
}

func (p *Proxy) serve(l net.Listener) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.serveLocked(l)
}

func (p *Proxy) serveLocked(l net.Listener) {
	p.listener = l
	p.wg.Add(1)
	go func() {
		defer p.wg.Done()
		for {
			c, err := l.Accept()
			if err != nil {
				return // closed: ProxyRefuse or Close
			}
			p.accept(c)
		}
	}()
}

// accept handles one new connection by the current mode.
func (p *Proxy) accept(client net.Conn) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed || p.mode == ProxyReset {
		reset(client)
		return
	}
	c := &proxyConn{client: client}
	p.conns[c] = struct{}{}
	p.wg.Add(1)
	go func() {
		defer p.wg.Done()
		p.run(c)
	}()
}

// run dials the target once the proxy forwards, then pipes both ways until either side ends.
func (p *Proxy) run(c *proxyConn) {
	defer p.forget(c)
	if !p.waitForward(c) {
		return
	}
	server, err := net.DialTimeout("tcp", p.target, 10*time.Second)
	if err != nil {
		return
	}
	p.mu.Lock()
	if c.dead {
		p.mu.Unlock()
		reset(server)
		return
	}
	c.server = server
	p.mu.Unlock()
	done := make(chan struct{}, 2)
	go func() { p.pipe(c, c.server, c.client, nil); done <- struct{}{} }()
	go func() { p.pipe(c, c.client, c.server, &p.fromTarget); done <- struct{}{} }()
	<-done
	// One side ended: end the other (unless a reset already did).
	p.mu.Lock()
	if !c.dead {
		c.client.Close()
		c.server.Close()
	}
	p.mu.Unlock()
	<-done
}

// pipe copies from src to dst, holding each chunk while the proxy blackholes; counted (when
// not nil) adds the bytes forwarded.
func (p *Proxy) pipe(c *proxyConn, dst, src net.Conn, counted *atomic.Int64) {
	buf := make([]byte, 32*1024)
	for {
		n, err := src.Read(buf)
		if n > 0 {
			if !p.waitForward(c) {
				return
			}
			if _, werr := dst.Write(buf[:n]); werr != nil {
				return
			}
			if counted != nil {
				counted.Add(int64(n))
			}
		}
		if err != nil {
			p.waitForward(c) // a blackhole forwards no close either
			return           // EOF or an error: run ends both sides
		}
	}
}

// waitForward blocks while the proxy blackholes; false once c is dead.
func (p *Proxy) waitForward(c *proxyConn) bool {
	for {
		p.mu.Lock()
		dead, mode, changed := c.dead, p.mode, p.changed
		p.mu.Unlock()
		if dead {
			return false
		}
		if mode != ProxyBlackhole {
			return true
		}
		<-changed
	}
}

func (p *Proxy) forget(c *proxyConn) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if !c.dead {
		c.kill()
	}
	delete(p.conns, c)
}

// kill resets both sides of c (callers hold p.mu).
func (c *proxyConn) kill() {
	c.dead = true
	reset(c.client)
	if c.server != nil {
		reset(c.server)
	}
}

// reset closes conn with SO_LINGER 0, so the peer gets an RST instead of a FIN.
func reset(conn net.Conn) {
	if tc, ok := conn.(*net.TCPConn); ok {
		tc.SetLinger(0)
	}
	conn.Close()
}
