package main

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// statusLimits bound the status server (/healthz, /metrics), so that slow or stalled clients cannot hold
// it. Zero fields take the defaults below.
type statusLimits struct {
	ReadHeaderTimeout time.Duration // default 5 s
	ReadTimeout       time.Duration // default 10 s
	WriteTimeout      time.Duration // default 30 s (a scrape of /metrics)
	IdleTimeout       time.Duration // default 60 s
	MaxHeaderBytes    int           // default 8 KiB
	MaxConns          int           // open connections at once; default 64, the rest wait to be accepted
}

// withDefaults returns l with every zero field set to its default.
func (l statusLimits) withDefaults() statusLimits {
	def := func(d *time.Duration, v time.Duration) {
		if *d <= 0 {
			*d = v
		}
	}
	def(&l.ReadHeaderTimeout, 5*time.Second)
	def(&l.ReadTimeout, 10*time.Second)
	def(&l.WriteTimeout, 30*time.Second)
	def(&l.IdleTimeout, 60*time.Second)
	if l.MaxHeaderBytes <= 0 {
		l.MaxHeaderBytes = 8 << 10
	}
	if l.MaxConns <= 0 {
		l.MaxConns = 64
	}
	return l
}

// serveStatus serves /healthz and /metrics on addr within limits.
func serveStatus(addr string, reg *prometheus.Registry, healthy func() bool, limits statusLimits, log *slog.Logger) (*http.Server, error) {
	limits = limits.withDefaults()
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{Registry: reg}))
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		if !healthy() {
			w.WriteHeader(http.StatusServiceUnavailable)
			fmt.Fprintln(w, `{"status":"unhealthy","components":{"rabbitmq":"disconnected"}}`)
			return
		}
		fmt.Fprintln(w, `{"status":"healthy","components":{"rabbitmq":"connected"}}`)
	})
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("listen on WORKER_METRICS_ADDR %s: %w", addr, err)
	}
	srv := &http.Server{
		Addr:              ln.Addr().String(),
		Handler:           mux,
		ReadHeaderTimeout: limits.ReadHeaderTimeout,
		ReadTimeout:       limits.ReadTimeout,
		WriteTimeout:      limits.WriteTimeout,
		IdleTimeout:       limits.IdleTimeout,
		MaxHeaderBytes:    limits.MaxHeaderBytes,
	}
	go func() {
		if err := srv.Serve(limitConns(ln, limits.MaxConns)); err != nil && !errors.Is(err, http.ErrServerClosed) {
			log.Error("status server", "error", err)
		}
	}()
	return srv, nil
}

// limitConns returns a listener that keeps at most n accepted connections open at once: Accept waits
// while n are open (golang.org/x/net/netutil.LimitListener's behaviour; x/net is not a dependency of the
// worker for these few lines).
func limitConns(ln net.Listener, n int) net.Listener {
	return &connLimit{Listener: ln, slots: make(chan struct{}, n)}
}

type connLimit struct {
	net.Listener
	slots chan struct{}
}

func (l *connLimit) Accept() (net.Conn, error) {
	l.slots <- struct{}{}
	c, err := l.Listener.Accept()
	if err != nil {
		<-l.slots
		return nil, err
	}
	return &limitedConn{Conn: c, release: func() { <-l.slots }}, nil
}

// limitedConn gives its slot back when it is closed, once.
type limitedConn struct {
	net.Conn
	once    sync.Once
	release func()
}

func (c *limitedConn) Close() error {
	err := c.Conn.Close()
	c.once.Do(c.release)
	return err
}
