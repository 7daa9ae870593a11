package broker

import (
	"bufio"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"fmt"
	"io"
	"math/big"
	"net"
	"strings"
	"sync"
	"testing"
	"time"
)

// gatedConn is the socket under a coalescedConn in the unit tests: each Write waits for the gate (when
// one is set), is recorded, and goes to the peer of a net.Pipe; fail makes the writes fail instead.
type gatedConn struct {
	net.Conn
	gate   chan struct{} // nil: writes go through at once
	mu     sync.Mutex
	writes [][]byte
	fail   error
	closed bool
}

func (g *gatedConn) Write(p []byte) (int, error) {
	if g.gate != nil {
		<-g.gate
	}
	g.mu.Lock()
	g.writes = append(g.writes, append([]byte(nil), p...))
	fail := g.fail
	g.mu.Unlock()
	if fail != nil {
		return 0, fail
	}
	return g.Conn.Write(p)
}

func (g *gatedConn) Close() error {
	g.mu.Lock()
	g.closed = true
	g.mu.Unlock()
	return g.Conn.Close()
}

func (g *gatedConn) state() (writes int, closed bool) {
	g.mu.Lock()
	defer g.mu.Unlock()
	return len(g.writes), g.closed
}

// pipe returns a coalescedConn over a gatedConn, and the peer that reads what it writes.
func pipe(t *testing.T, gate chan struct{}) (*coalescedConn, *gatedConn, net.Conn) {
	t.Helper()
	ours, peer := net.Pipe()
	g := &gatedConn{Conn: ours, gate: gate}
	c := coalesce(g)
	t.Cleanup(func() {
		_ = c.Close()
		_ = peer.Close()
		<-c.done // the writing goroutine ends with the connection
	})
	return c, g, peer
}

// waitState waits until cond, which reads c's state, holds (it runs under c's lock).
func waitState(t *testing.T, c *coalescedConn, what string, cond func() bool) {
	t.Helper()
	waitUntil(t, what, func() bool {
		c.mu.Lock()
		defer c.mu.Unlock()
		return cond()
	})
}

func waitUntil(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(time.Minute); !cond(); time.Sleep(time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
	}
}

// TestCoalescedWritesGoOutTogetherAndWhole: while one write is in the kernel (here: held at the gate), the
// writes of 16 goroutines gather and go out in one; every Write's bytes arrive whole, each goroutine's in
// its order.
func TestCoalescedWritesGoOutTogetherAndWhole(t *testing.T) {
	t.Parallel()
	gate := make(chan struct{})
	c, g, peer := pipe(t, gate)
	lines := make(chan string, 2000)
	go func() {
		sc := bufio.NewScanner(peer)
		for sc.Scan() {
			lines <- sc.Text()
		}
		close(lines)
	}()
	if _, err := c.Write([]byte("first\n")); err != nil {
		t.Fatal(err)
	}
	// Taken by the writer, which waits at the gate.
	waitState(t, c, "the first write to reach the socket", func() bool { return len(c.pending) == 0 })
	const writers, each = 16, 50
	var wg sync.WaitGroup
	for w := range writers {
		wg.Go(func() {
			for i := range each {
				// One Write per record: a record torn or mixed with another's bytes would show.
				if _, err := fmt.Fprintf(c, "w%02d %04d %s\n", w, i, strings.Repeat("x", 40)); err != nil {
					t.Error(err)
				}
			}
		})
	}
	wg.Wait() // every Write returned while the socket was held: they wait in the buffer
	close(gate)
	next := make([]int, writers)
	for range writers*each + 1 {
		line, ok := <-lines
		if !ok {
			t.Fatal("the connection ended early")
		}
		if line == "first" {
			continue
		}
		var w, i int
		var pad string
		if n, err := fmt.Sscanf(line, "w%02d %04d %s", &w, &i, &pad); n != 3 || err != nil || len(pad) != 40 || i != next[w] {
			t.Fatalf("record %q: torn or out of order (writer %d expected %d)", line, w, next[w])
		}
		next[w]++
	}
	if writes, _ := g.state(); writes != 2 {
		t.Errorf("%d writes to the socket for %d Writes: want 2 (the first, then all that gathered)", writes, writers*each+1)
	}
}

// TestCoalescedWritesUnderLoad: writers racing the writing goroutine round after round (no gate), which
// now and then catches up with them (they pause), the buffers swapped under them: every record arrives whole
// and in its writer's order. Run with -race, a buffer written out while it is appended to shows as a race.
func TestCoalescedWritesUnderLoad(t *testing.T) {
	t.Parallel()
	c, _, peer := pipe(t, nil)
	const writers, each = 8, 2000
	record := func(w, i int) string { return fmt.Sprintf("w%02d %04d %s\n", w, i, strings.Repeat("y", w+1)) }
	total := 0
	for w := range writers {
		total += each * len(record(w, 0))
	}
	got := make(chan []byte, 1)
	go func() {
		buf := make([]byte, total)
		n, _ := io.ReadFull(peer, buf) // a fast reader: the writer often finds nothing left to write
		got <- buf[:n]
	}()
	var wg sync.WaitGroup
	for w := range writers {
		wg.Go(func() {
			for i := range each {
				if _, err := io.WriteString(c, record(w, i)); err != nil {
					t.Error(err)
					return
				}
				if i%50 == 0 {
					time.Sleep(100 * time.Microsecond) // a pause: the writing goroutine catches up
				}
			}
		})
	}
	wg.Wait()
	data := <-got
	next := make([]int, writers)
	for line := range strings.Lines(string(data)) {
		var w, i int
		var pad string
		if k, err := fmt.Sscanf(line, "w%02d %04d %s", &w, &i, &pad); k != 3 || err != nil || w >= writers || line != record(w, next[w]) {
			t.Fatalf("record %q: torn or out of order", line)
		}
		next[w]++
	}
	for w, n := range next {
		if n != each {
			t.Fatalf("writer %d: %d records arrived, want %d", w, n, each)
		}
	}
}

// TestCoalescedWriteWaitsForRoom: with coalesceLimit bytes waiting for a socket that does not take them,
// Write blocks (the broker's backpressure reaches the publishers) until they are taken.
func TestCoalescedWriteWaitsForRoom(t *testing.T) {
	t.Parallel()
	gate := make(chan struct{})
	c, _, peer := pipe(t, gate)
	go func() { _, _ = io.Copy(io.Discard, peer) }()
	if _, err := c.Write([]byte("held")); err != nil { // taken by the writer, which waits at the gate
		t.Fatal(err)
	}
	waitState(t, c, "the writer to take the first bytes", func() bool { return len(c.pending) == 0 })
	if _, err := c.Write(make([]byte, coalesceLimit)); err != nil { // fills the buffer
		t.Fatal(err)
	}
	returned := make(chan error, 1)
	go func() {
		_, err := c.Write([]byte("one more"))
		returned <- err
	}()
	waitState(t, c, "the Write past the limit to block", func() bool { return c.blocked == 1 })
	select {
	case err := <-returned:
		t.Fatalf("a Write past the limit returned (%v) while the socket took nothing", err)
	default:
	}
	close(gate)
	if err := <-returned; err != nil {
		t.Fatalf("the blocked Write, once the socket took the bytes: %v", err)
	}
}

// TestCoalescedWriteFailureEndsTheConnection: a failed write fails every later Write with its error and
// closes the socket (so amqp091's reader ends and the session redials); Close fails them with
// net.ErrClosed, wakes a Write blocked for room, and writes out what was pending before it closes the
// socket.
func TestCoalescedWriteFailureEndsTheConnection(t *testing.T) {
	t.Parallel()
	c, g, peer := pipe(t, nil)
	go func() { _, _ = io.Copy(io.Discard, peer) }()
	broken := errors.New("connection reset by peer (test)")
	g.mu.Lock()
	g.fail = broken
	g.mu.Unlock()
	if _, err := c.Write([]byte("lost")); err != nil {
		t.Fatalf("the Write itself returns before its bytes are written: %v", err)
	}
	waitUntil(t, "the failed write to close the socket", func() bool { _, closed := g.state(); return closed })
	if _, err := c.Write([]byte("after")); !errors.Is(err, broken) {
		t.Fatalf("a Write after the failure: %v, want %v", err, broken)
	}

	gate := make(chan struct{})
	c2, _, peer2 := pipe(t, gate)
	go func() { _, _ = io.Copy(io.Discard, peer2) }()
	_, _ = c2.Write([]byte("held"))
	waitState(t, c2, "the writer to take the first bytes", func() bool { return len(c2.pending) == 0 })
	_, _ = c2.Write(make([]byte, coalesceLimit))
	returned := make(chan error, 1)
	go func() {
		_, err := c2.Write([]byte("blocked"))
		returned <- err
	}()
	waitState(t, c2, "a Write to block", func() bool { return c2.blocked == 1 })
	closed := make(chan error, 1)
	go func() { closed <- c2.Close() }() // it waits for the pending bytes to go out
	if err := <-returned; !errors.Is(err, net.ErrClosed) {
		t.Fatalf("a Write blocked at Close: %v, want net.ErrClosed", err)
	}
	if _, err := c2.Write([]byte("after Close")); !errors.Is(err, net.ErrClosed) {
		t.Fatalf("a Write after Close: %v, want net.ErrClosed", err)
	}
	close(gate)
	if err := <-closed; err != nil {
		t.Fatalf("Close: %v", err)
	}
}

// TestCoalescedCloseWritesOutWhatIsPending: bytes queued when Close comes (amqp091's close-ok to a broker
// that closes the connection, TLS's close_notify) reach the peer before the socket closes.
func TestCoalescedCloseWritesOutWhatIsPending(t *testing.T) {
	t.Parallel()
	gate := make(chan struct{})
	c, _, peer := pipe(t, gate)
	got := make(chan []byte, 1)
	go func() {
		data, _ := io.ReadAll(peer) // until the socket closes
		got <- data
	}()
	_, _ = c.Write([]byte("held|"))
	waitState(t, c, "the writer to take the first bytes", func() bool { return len(c.pending) == 0 })
	_, _ = c.Write([]byte("close-ok|"))
	close(gate)
	waitState(t, c, "the writer to write out what gathered and wait again", func() bool { return len(c.pending) == 0 && len(c.wake) == 0 })
	// Bytes queued an instant before Close, their writer not yet woken (as a Write that has appended but
	// not yet signalled): Close must still write them out.
	c.mu.Lock()
	c.pending = append(c.pending, "last"...)
	c.mu.Unlock()
	closed := make(chan error, 1)
	go func() { closed <- c.Close() }()
	if err := <-closed; err != nil {
		t.Fatalf("Close: %v", err)
	}
	if data := <-got; string(data) != "held|close-ok|last" {
		t.Fatalf("the peer read %q before the socket closed: want every byte queued before Close", data)
	}
}

// TestCoalescedConnCarriesTLS: amqps wraps the coalesced socket in TLS (amqp091 dials, then tls.Client):
// the handshake and the records written while others are in flight go through whole.
func TestCoalescedConnCarriesTLS(t *testing.T) {
	t.Parallel()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "broker.test"},
		DNSNames: []string{"broker.test"}, NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour)}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, _ := x509.ParseCertificate(der)
	roots := x509.NewCertPool()
	roots.AddCert(cert)
	ln, err := tls.Listen("tcp", "127.0.0.1:0", &tls.Config{Certificates: []tls.Certificate{{Certificate: [][]byte{der}, PrivateKey: key}}})
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	echoed := make(chan error, 1)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			echoed <- err
			return
		}
		defer c.Close()
		_, err = io.Copy(c, c) // echoes until the client closes its side
		echoed <- err
	}()
	raw, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	c := coalesce(raw)
	defer c.Close()
	client := tls.Client(c, &tls.Config{ServerName: "broker.test", RootCAs: roots})
	if err := client.HandshakeContext(t.Context()); err != nil {
		t.Fatalf("TLS handshake over the coalesced socket: %v", err)
	}
	const writers, each = 4, 200
	var wg sync.WaitGroup
	for w := range writers {
		wg.Go(func() {
			for i := range each {
				if _, err := fmt.Fprintf(client, "w%02d %04d\n", w, i); err != nil {
					t.Error(err)
					return
				}
			}
		})
	}
	next := make([]int, writers)
	sc := bufio.NewScanner(client)
	for range writers * each {
		if !sc.Scan() {
			t.Fatalf("the echo ended: %v", sc.Err())
		}
		var w, i int
		if n, err := fmt.Sscanf(sc.Text(), "w%02d %04d", &w, &i); n != 2 || err != nil || w >= writers || i != next[w] {
			t.Fatalf("record %q: torn or out of order", sc.Text())
		}
		next[w]++
	}
	wg.Wait()
	_ = client.CloseWrite()
	if err := <-echoed; err != nil {
		t.Fatalf("the server's side: %v", err)
	}
}
