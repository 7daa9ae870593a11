package main

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/scrapeplatform/platform/functions/gateway"
	"github.com/scrapeplatform/platform/functions/gateway/localedge"
	"github.com/scrapeplatform/platform/shared/contract"
)

// The HTTP server's fixed limits (the README's "HTTP server" section); the body timeout and the connection
// cap are settings (localedge.Config).
const (
	// headerTimeout bounds the arrival of a request's header section.
	headerTimeout = 10 * time.Second
	// idleTimeout closes a keep-alive connection idle this long; idle connections count against the cap.
	idleTimeout = time.Minute
	// maxHeaderBytes is the documented limit of a request's header section (request line and headers):
	// larger ones are answered 431. Go's server reads up to MaxHeaderBytes plus 4096 bytes of bufio slop,
	// so the server is configured with the limit minus that slop.
	maxHeaderBytes = 10 << 10
	headerSlop     = 4096
	// answerMargin is added to a request's longest legitimate life for writing the answer.
	answerMargin = 5 * time.Second
	// publishAllowance is the time a job's task may take to be confirmed after a short sync window
	// (gateway's publishAllowance).
	publishAllowance = 10 * time.Second
)

// requestLifetime is the longest a request may legitimately take once its header has arrived: its body
// (BodyTimeout), then the longest the handler waits (the sync window or a job's long poll, plus
// SCRAPE_REPLY_GRACE, gateway.Config.LongestWait; plus the publish allowance of a job's task), then the
// answer. The server's ReadTimeout and WriteTimeout are that: a shorter ReadTimeout would cut long
// scrapes (a read deadline that passes while a handler runs cancels its request's context).
func requestLifetime(cfg localedge.Config) time.Duration {
	return cfg.BodyTimeout + cfg.Gateway.LongestWait() + publishAllowance + answerMargin
}

// newServer returns the gateway's HTTP server for h, with every timeout set, the header limit, and h
// guarded by the body rules (guardBody).
func newServer(cfg localedge.Config, h http.Handler) *http.Server {
	life := requestLifetime(cfg)
	return &http.Server{
		Handler:           guardBody(h, cfg.BodyTimeout, life),
		ReadHeaderTimeout: headerTimeout,
		ReadTimeout:       life,
		WriteTimeout:      life,
		IdleTimeout:       idleTimeout,
		MaxHeaderBytes:    maxHeaderBytes - headerSlop,
		ConnContext:       framingContext,
	}
}

// earlyAnswerLinger bounds how long a connection stays open after an answer sent before its request's body
// arrived (guardBody).
const earlyAnswerLinger = time.Second

// guardBody applies the rules on request bodies that http.Server has no setting for:
//
//   - a request with both Content-Length and Transfer-Encoding is refused (400): Go's server would let
//     Transfer-Encoding win (RFC 9112 §6.3) and drop the other header, but a proxy in front may have read
//     the other one, which is how requests are smuggled;
//   - the body must arrive within bodyTimeout of the handler's start, else its read fails and the handler
//     answers 408; once it has arrived, the connection's read deadline goes back to the request's lifetime;
//   - an answer sent before the whole body arrived (401 without reading it, 413, 408) closes the
//     connection: the client gets the answer at once instead of after the server waited for the rest.
func guardBody(next http.Handler, bodyTimeout, lifetime time.Duration) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if fc, ok := r.Context().Value(framingKey{}).(*framingConn); ok && fc.nextRequestConflicts() {
			w.Header().Set("Connection", "close")
			writeRefusal(w, http.StatusBadRequest, contract.CodeInvalidRequest,
				"the request has both Content-Length and Transfer-Encoding; send exactly one of them (RFC 9112 section 6.3)")
			return
		}
		if r.Body == nil || r.Body == http.NoBody {
			next.ServeHTTP(w, r)
			return
		}
		start := time.Now()
		rc := http.NewResponseController(w)
		_ = rc.SetReadDeadline(start.Add(bodyTimeout))
		body := &watchedBody{ReadCloser: r.Body, arrived: func() { _ = rc.SetReadDeadline(start.Add(lifetime)) }}
		r.Body = body
		next.ServeHTTP(&earlyAnswer{ResponseWriter: w, body: body}, r)
		if !body.complete.Load() {
			// The answer is flushed before the server reads the body again; the connection is marked
			// "Connection: close" and ends within earlyAnswerLinger. Not at once: closing a socket whose
			// peer is still sending makes the kernel send a reset, which can destroy the answer before the
			// client reads it (seen as "connection reset by peer" on a 413); the short linger lets Go's
			// server drain a little and half-close first, as it does for any unread body.
			_ = rc.SetReadDeadline(time.Now().Add(earlyAnswerLinger))
		}
	})
}

// watchedBody notes when a request body has been read to its end.
type watchedBody struct {
	io.ReadCloser
	arrived  func()
	complete atomic.Bool
}

func (b *watchedBody) Read(p []byte) (int, error) {
	n, err := b.ReadCloser.Read(p)
	if err == io.EOF && b.complete.CompareAndSwap(false, true) {
		b.arrived()
	}
	return n, err
}

// earlyAnswer marks an answer "Connection: close" when it starts before the whole body arrived.
type earlyAnswer struct {
	http.ResponseWriter
	body  *watchedBody
	wrote bool
}

func (e *earlyAnswer) WriteHeader(code int) {
	if !e.wrote && !e.body.complete.Load() {
		e.Header().Set("Connection", "close")
	}
	e.wrote = true
	e.ResponseWriter.WriteHeader(code)
}

func (e *earlyAnswer) Write(p []byte) (int, error) {
	if !e.wrote {
		e.WriteHeader(http.StatusOK)
	}
	return e.ResponseWriter.Write(p)
}

// Unwrap lets http.ResponseController reach the server's writer.
func (e *earlyAnswer) Unwrap() http.ResponseWriter { return e.ResponseWriter }

// writeRefusal writes the gateway's JSON error body (gateway.errorBody's shape).
func writeRefusal(w http.ResponseWriter, status int, code contract.Code, msg string) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(map[string]string{"error": msg, "error_code": string(code), "request_id": gateway.NewRequestID()})
}

// capListener accepts at most cap(slots) connections at a time. Past that it answers each new connection
// with a canned 503 and closes it at once, so a flood of connections costs neither file descriptors nor
// memory beyond the cap and queues nothing in the kernel's backlog; the timeouts (headerTimeout,
// BodyTimeout, idleTimeout) free the slots of connections that stall.
type capListener struct {
	net.Listener
	slots   chan struct{}
	refused atomic.Int64
	log     *slog.Logger
}

// newCapListener caps ln at max connections.
func newCapListener(ln net.Listener, max int, log *slog.Logger) *capListener {
	return &capListener{Listener: ln, slots: make(chan struct{}, max), log: log}
}

// Accept implements net.Listener.
func (l *capListener) Accept() (net.Conn, error) {
	for {
		c, err := l.Listener.Accept()
		if err != nil {
			return nil, err
		}
		select {
		case l.slots <- struct{}{}:
			return &cappedConn{Conn: &framingConn{Conn: c}, release: func() { <-l.slots }}, nil
		default:
		}
		if n := l.refused.Add(1); n == 1 || n%1000 == 0 {
			l.log.Warn("connection cap reached: refusing new connections with 503", "max_connections", cap(l.slots), "refused_total", n)
		}
		refuseConn(c)
	}
}

// overCapAnswer is what a connection past the cap gets before it is closed: a 503 naming a request id of
// its own, like every error body.
func overCapAnswer() []byte {
	body := `{"error":"the gateway has too many open connections; retry shortly","error_code":"server_busy","request_id":"` +
		gateway.NewRequestID() + `"}` + "\n"
	return []byte("HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/json\r\nRetry-After: 1\r\n" +
		"Connection: close\r\nContent-Length: " + strconv.Itoa(len(body)) + "\r\n\r\n" + body)
}

// refuseConn writes overCapAnswer (a few hundred bytes fit any socket buffer; the deadline covers a peer
// that reads nothing) and closes c.
func refuseConn(c net.Conn) {
	_ = c.SetWriteDeadline(time.Now().Add(100 * time.Millisecond))
	_, _ = c.Write(overCapAnswer())
	_ = c.Close()
}

// cappedConn gives its slot back when closed.
type cappedConn struct {
	net.Conn
	once    sync.Once
	release func()
}

func (c *cappedConn) Close() error {
	err := c.Conn.Close()
	c.once.Do(c.release)
	return err
}

// framingContext is the server's ConnContext: it finds the connection's framingConn for guardBody.
func framingContext(ctx context.Context, c net.Conn) context.Context {
	for {
		switch v := c.(type) {
		case *framingConn:
			return context.WithValue(ctx, framingKey{}, v)
		case *cappedConn:
			c = v.Conn
		default:
			return ctx
		}
	}
}

type framingKey struct{}
