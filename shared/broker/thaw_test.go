package broker_test

import (
	"context"
	"net"
	"net/url"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/scrapeplatform/platform/shared/broker"
)

// blackholeProxy forwards TCP to the broker until frozen; then it silently drops everything on existing
// connections, which is what a connection looks like to a Lambda environment thawed after the broker gave
// up on it: open on our side, dead on the other.
type blackholeProxy struct {
	ln    net.Listener
	mu    sync.Mutex
	conns []net.Conn
	dead  []*atomic.Bool // one per proxied connection
}

func newBlackholeProxy(t *testing.T, target string) *blackholeProxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &blackholeProxy{ln: ln}
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			up, err := net.Dial("tcp", target)
			if err != nil {
				c.Close()
				continue
			}
			dead := new(atomic.Bool)
			p.mu.Lock()
			p.conns = append(p.conns, c, up)
			p.dead = append(p.dead, dead)
			p.mu.Unlock()
			go pipe(c, up, dead)
			go pipe(up, c, dead)
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		p.mu.Lock()
		for _, c := range p.conns {
			c.Close()
		}
		p.mu.Unlock()
	})
	return p
}

// pipe copies until the connection is frozen; then it swallows data (never closing, never answering).
func pipe(dst, src net.Conn, dead *atomic.Bool) {
	buf := make([]byte, 32*1024)
	for {
		n, err := src.Read(buf)
		if n > 0 && !dead.Load() {
			if _, werr := dst.Write(buf[:n]); werr != nil {
				return
			}
		}
		if err != nil {
			return // io.EOF or a closed connection
		}
	}
}

// freeze kills every existing connection silently; new connections work.
func (p *blackholeProxy) freeze() {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, d := range p.dead {
		d.Store(true)
	}
}

func TestRPCCheckIdleRedialsAHalfOpenConnection(t *testing.T) {
	t.Parallel()
	s := newSetup(t)
	s.responder(t, echo)
	u, _ := url.Parse(s.url)
	proxy := newBlackholeProxy(t, u.Host)
	proxied := *u
	proxied.Host = proxy.ln.Addr().String()
	var connects atomic.Int64
	c := s.client(t, func(cfg *broker.RPCConfig) {
		cfg.URL = proxied.String()
		cfg.OnConnect = func() { connects.Add(1) }
	})
	waitFor(t, c.Connected, "client to connect")
	call := func() error {
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
		defer cancel()
		_, err := c.Call(ctx, request("id-"+time.Now().Format(time.RFC3339Nano), time.Now().Add(3*time.Second)))
		return err
	}
	if err := call(); err != nil {
		t.Fatal(err)
	}
	// Freeze: the connection still looks open to the client; new connections work.
	proxy.freeze()
	if !c.Connected() {
		t.Fatal("the client noticed the freeze by itself; the test would not show anything")
	}
	// The invocation begins with the idle check: it must find the dead connection and redial.
	c.CheckIdle(context.Background(), 0, 500*time.Millisecond)
	if err := call(); err != nil {
		t.Fatalf("call after the idle check: %v", err)
	}
	// OnConnect runs after the session is ready, so the call may have gone through before it counted.
	waitFor(t, func() bool { return connects.Load() >= 2 }, "client to count its redial")
}
