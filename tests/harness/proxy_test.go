package harness

import (
	"errors"
	"io"
	"net"
	"syscall"
	"testing"
	"time"
)

// echoServer accepts connections on 127.0.0.1 and writes back what it reads.
func echoServer(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			go func() { defer c.Close(); io.Copy(c, c) }()
		}
	}()
	return l.Addr().String()
}

func dialProxy(t *testing.T, p *Proxy) net.Conn {
	t.Helper()
	c, err := net.DialTimeout("tcp", p.addr, 2*time.Second)
	if err != nil {
		t.Fatalf("dial the proxy in mode %s: %v", p.Mode(), err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// roundTrip writes msg and reads as many bytes back within wait.
func roundTrip(c net.Conn, msg string, wait time.Duration) (string, error) {
	if _, err := c.Write([]byte(msg)); err != nil {
		return "", err
	}
	return readN(c, len(msg), wait)
}

func readN(c net.Conn, n int, wait time.Duration) (string, error) {
	c.SetReadDeadline(time.Now().Add(wait))
	buf := make([]byte, n)
	_, err := io.ReadFull(c, buf)
	return string(buf), err
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

func TestProxyForwardsAndHoldsTrafficInABlackholeUntilItForwardsAgain(t *testing.T) {
	p := StartProxy(t, echoServer(t), ProxyForward)
	c := dialProxy(t, p)
	if got, err := roundTrip(c, "hello", 2*time.Second); err != nil || got != "hello" {
		t.Fatalf("forward: %q, %v", got, err)
	}
	p.Set(t, ProxyBlackhole)
	if _, err := roundTrip(c, "held", 300*time.Millisecond); !isTimeout(err) {
		t.Fatalf("an open connection in a blackhole: %v, want a read timeout", err)
	}
	fresh := dialProxy(t, p) // accepted, then silent
	if _, err := roundTrip(fresh, "new", 300*time.Millisecond); !isTimeout(err) {
		t.Fatalf("a new connection in a blackhole: %v, want a read timeout", err)
	}
	if n := p.Conns(); n != 2 {
		t.Fatalf("the blackhole holds %d connections, want 2 kept open", n)
	}
	p.Set(t, ProxyForward)
	if got, err := readN(c, 4, 2*time.Second); err != nil || got != "held" {
		t.Fatalf("held data after forwarding again: %q, %v", got, err)
	}
	if got, err := readN(fresh, 3, 2*time.Second); err != nil || got != "new" {
		t.Fatalf("a connection accepted in the blackhole, after forwarding again: %q, %v", got, err)
	}
}

func TestProxyResetCutsOpenAndNewConnections(t *testing.T) {
	p := StartProxy(t, echoServer(t), ProxyForward)
	c := dialProxy(t, p)
	if _, err := roundTrip(c, "x", 2*time.Second); err != nil {
		t.Fatal(err)
	}
	p.Set(t, ProxyReset)
	if _, err := readN(c, 1, 2*time.Second); !errors.Is(err, syscall.ECONNRESET) {
		t.Fatalf("an open connection after a reset: %v, want ECONNRESET", err)
	}
	// The reset of a new connection may come before the dial returns (the dial fails with it) or after.
	fresh, err := net.DialTimeout("tcp", p.addr, 2*time.Second)
	if err == nil {
		defer fresh.Close()
		_, err = readN(fresh, 1, 2*time.Second)
	}
	if !errors.Is(err, syscall.ECONNRESET) && !errors.Is(err, io.EOF) {
		t.Fatalf("a new connection while resetting: %v, want it reset", err)
	}
	p.Set(t, ProxyForward)
	if got, err := roundTrip(dialProxy(t, p), "back", 2*time.Second); err != nil || got != "back" {
		t.Fatalf("forward after a reset: %q, %v", got, err)
	}
}

func TestProxyRefuseRefusesNewConnectionsAndKeepsOpenOnes(t *testing.T) {
	p := StartProxy(t, echoServer(t), ProxyForward)
	c := dialProxy(t, p)
	p.Set(t, ProxyRefuse)
	if _, err := net.DialTimeout("tcp", p.addr, 2*time.Second); !errors.Is(err, syscall.ECONNREFUSED) {
		t.Fatalf("dial while refusing: %v, want ECONNREFUSED", err)
	}
	if got, err := roundTrip(c, "still", 2*time.Second); err != nil || got != "still" {
		t.Fatalf("an open connection while refusing: %q, %v", got, err)
	}
	p.Set(t, ProxyForward)
	if got, err := roundTrip(dialProxy(t, p), "again", 2*time.Second); err != nil || got != "again" {
		t.Fatalf("forward after refusing, same port %d: %q, %v", p.Port(), got, err)
	}
}

func TestProxyWithoutATargetBlackholesFromTheStart(t *testing.T) {
	p := StartProxy(t, "", ProxyBlackhole)
	c := dialProxy(t, p)
	if _, err := roundTrip(c, "anyone?", 300*time.Millisecond); !isTimeout(err) {
		t.Fatalf("a blackhole peer answered: %v", err)
	}
	p.Close()
	if _, err := readN(c, 1, 2*time.Second); err == nil || isTimeout(err) {
		t.Fatalf("a connection after Close: %v, want it closed", err)
	}
}
