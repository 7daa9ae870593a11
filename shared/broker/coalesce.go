package broker

import (
	"net"
	"sync"
	"time"
)

// coalescedConn is a broker connection's socket with its writes coalesced. amqp091 flushes every group of
// frames (a publish, an ack, a confirm.select) with a write of its own, so the many goroutines that publish
// and ack on one connection (a worker's replies, a gateway's tasks) each pay a syscall, and the broker a
// socket read and a wake-up of its connection process for each. Here Write appends to a buffer and returns;
// one goroutine writes out whatever has gathered, so while one write is in the kernel the next ones gather
// behind it and go out together (group commit). A write on an idle connection goes out at once: nothing
// waits for company, so latency does not grow.
//
// Write blocks while coalesceLimit bytes already wait, so a broker that stops reading (TCP backpressure, a
// memory alarm) still holds the writers back. A write that fails fails every later Write with its error,
// and closes the socket so that amqp091's reader ends too (the session then redials). Close writes out
// what is pending first (amqp091 may close right after queueing a frame: the close-ok of a connection the
// broker closes), for at most closeFlush. Bytes are only ever written in the order their Writes returned,
// each Write's bytes together.
type coalescedConn struct {
	net.Conn

	mu sync.Mutex
	// drained is signalled when the pending bytes were taken for writing, or the connection failed.
	drained sync.Cond
	pending []byte
	spare   []byte // the buffer last written out, reused for the next bytes
	err     error  // of the write that failed
	closed  bool   // Close was called: Writes fail with net.ErrClosed
	blocked int    // Writes waiting for room (tests look)

	wake     chan struct{} // cap 1: there are pending bytes
	stop     chan struct{} // closed by Close
	stopOnce sync.Once
	done     chan struct{} // closed when the writing goroutine has ended
}

// coalesceLimit is how many bytes may wait for the socket before Write blocks.
const coalesceLimit = 1 << 20

// closeFlush bounds how long Close spends writing out what is pending.
const closeFlush = time.Second

func coalesce(c net.Conn) *coalescedConn {
	cc := &coalescedConn{Conn: c, wake: make(chan struct{}, 1), stop: make(chan struct{}), done: make(chan struct{})}
	cc.drained.L = &cc.mu
	go cc.run()
	return cc
}

// Write queues p for the socket and returns at once, unless coalesceLimit bytes wait already: then it waits
// for them to be taken. Its error is that of an earlier write that failed, or net.ErrClosed after Close.
func (c *coalescedConn) Write(p []byte) (int, error) {
	c.mu.Lock()
	for !c.closed && c.err == nil && len(c.pending) > 0 && len(c.pending)+len(p) > coalesceLimit {
		c.blocked++
		c.drained.Wait()
		c.blocked--
	}
	if c.closed || c.err != nil {
		err := c.err
		if err == nil {
			err = net.ErrClosed
		}
		c.mu.Unlock()
		return 0, err
	}
	c.pending = append(c.pending, p...)
	c.mu.Unlock()
	select {
	case c.wake <- struct{}{}:
	default: // the writer is awake already, and takes these bytes on its next round
	}
	return len(p), nil
}

// run writes out the pending bytes whenever there are some, all that have gathered in one write, until
// Close (then once more) or a write fails.
func (c *coalescedConn) run() {
	defer close(c.done)
	for {
		stopping := false
		select {
		case <-c.wake:
		case <-c.stop:
			stopping = true
		}
		if !c.flush() || stopping {
			return
		}
	}
}

// flush writes out the pending bytes until none are left; false when a write failed.
func (c *coalescedConn) flush() bool {
	for {
		c.mu.Lock()
		if c.err != nil || len(c.pending) == 0 {
			ok := c.err == nil
			c.mu.Unlock()
			return ok
		}
		out := c.pending
		c.pending, c.spare = c.spare[:0], nil
		c.drained.Broadcast()
		c.mu.Unlock()

		_, err := c.Conn.Write(out)

		c.mu.Lock()
		if cap(out) <= 2*coalesceLimit { // a buffer grown by one huge write is not kept
			c.spare = out[:0]
		}
		if err != nil && c.err == nil {
			c.err = err
			c.drained.Broadcast()
		}
		c.mu.Unlock()
		if err != nil {
			_ = c.Conn.Close() // amqp091's reader ends too
			return false
		}
	}
}

// Close fails the Writes from now on (and those waiting for room), writes out what is pending (within
// closeFlush), and closes the socket.
func (c *coalescedConn) Close() error {
	c.mu.Lock()
	c.closed = true
	c.drained.Broadcast()
	c.mu.Unlock()
	c.stopOnce.Do(func() {
		_ = c.Conn.SetWriteDeadline(time.Now().Add(closeFlush))
		close(c.stop)
	})
	<-c.done
	return c.Conn.Close()
}
