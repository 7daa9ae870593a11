package egress

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/httputil"
	"net/netip"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Timeouts of the proxy.
const (
	dialTimeout    = 10 * time.Second
	resolveTimeout = 5 * time.Second
	// tunnelIdle ends a CONNECT tunnel that carried nothing for this long.
	tunnelIdle = 2 * time.Minute
)

// Config configures a Proxy.
type Config struct {
	// Addr is the listen address (default 127.0.0.1:0, a free loopback port).
	Addr   string
	Policy Policy
	// Resolve looks host names up (default net.DefaultResolver); tests replace it.
	Resolve func(ctx context.Context, host string) ([]netip.Addr, error)
	// Metrics records every decision; nil records nothing.
	Metrics Metrics
	// Logger receives the proxy's refusals and problems; nil discards them.
	Logger *slog.Logger
	// Enabled says whether the worker runs the proxy at all (EGRESS_PROXY); LoadConfig sets it, Start
	// ignores it.
	Enabled bool
}

// withDefaults returns c with every zero field set to its default.
func (c Config) withDefaults() Config {
	if c.Addr == "" {
		c.Addr = "127.0.0.1:0"
	}
	if c.Resolve == nil {
		c.Resolve = func(ctx context.Context, host string) ([]netip.Addr, error) {
			return net.DefaultResolver.LookupNetIP(ctx, "ip", host)
		}
	}
	if c.Metrics == nil {
		c.Metrics = nopMetrics{}
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	return c
}

// Proxy is an HTTP forward proxy (plain requests in absolute form, and CONNECT tunnels) that reaches only
// the destinations its Policy allows.
type Proxy struct {
	cfg   Config
	log   *slog.Logger
	ln    net.Listener
	srv   *http.Server
	proxy *httputil.ReverseProxy

	mu      sync.Mutex
	tunnels map[net.Conn]struct{}
	closed  bool
}

// Start listens and serves until Shutdown.
func Start(cfg Config) (*Proxy, error) {
	cfg = cfg.withDefaults()
	log := cfg.Logger
	ln, err := net.Listen("tcp", cfg.Addr)
	if err != nil {
		return nil, fmt.Errorf("egress proxy: listen on %s: %w", cfg.Addr, err)
	}
	p := &Proxy{cfg: cfg, log: log.With("component", "egress"), ln: ln, tunnels: map[net.Conn]struct{}{}}
	transport := &http.Transport{
		Proxy:                 nil, // never chain to the worker's own proxy settings
		DialContext:           p.dial,
		ForceAttemptHTTP2:     false,
		MaxIdleConns:          64,
		IdleConnTimeout:       30 * time.Second,
		TLSHandshakeTimeout:   10 * time.Second,
		ResponseHeaderTimeout: 0, // the script's own timeout bounds the wait
		DisableCompression:    true,
	}
	p.proxy = &httputil.ReverseProxy{
		Rewrite: func(pr *httputil.ProxyRequest) {
			pr.Out.URL = pr.In.URL
			pr.Out.Host = pr.In.Host
			pr.Out.Header.Del("Proxy-Authorization")
			pr.Out.Header.Del("Proxy-Connection")
		},
		Transport:    transport,
		ErrorHandler: p.proxyError,
		ErrorLog:     slog.NewLogLogger(p.log.Handler(), slog.LevelWarn),
	}
	p.srv = &http.Server{Handler: p, ReadHeaderTimeout: 10 * time.Second, ErrorLog: slog.NewLogLogger(p.log.Handler(), slog.LevelDebug)}
	go func() { _ = p.srv.Serve(ln) }()
	return p, nil
}

// URL is the proxy's address for http_proxy and https_proxy.
func (p *Proxy) URL() string { return "http://" + p.ln.Addr().String() }

// Shutdown stops the proxy: it stops accepting, ends open CONNECT tunnels at once, and lets plain requests
// in flight finish until ctx ends, when it closes them too. It returns ctx's error if it had to.
func (p *Proxy) Shutdown(ctx context.Context) error {
	p.mu.Lock()
	p.closed = true
	for c := range p.tunnels {
		_ = c.Close()
	}
	p.mu.Unlock()
	err := p.srv.Shutdown(ctx)
	if err != nil {
		_ = p.srv.Close()
		return fmt.Errorf("egress proxy shutdown: %w", err)
	}
	return nil
}

// ServeHTTP implements http.Handler.
func (p *Proxy) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method == http.MethodConnect {
		p.connect(w, r)
		return
	}
	if !r.URL.IsAbs() || (r.URL.Scheme != "http" && r.URL.Scheme != "https") || r.URL.Host == "" {
		p.cfg.Metrics.EgressDecision(false, "bad_request")
		http.Error(w, "egress proxy: send requests in absolute form (http://host/path), or CONNECT host:port", http.StatusBadRequest)
		return
	}
	// The destination is checked again when the transport dials (redirects are new requests, checked too).
	p.proxy.ServeHTTP(w, r)
}

// errRefused marks dial errors that are policy decisions.
type refusal struct {
	host   string
	reason string // metric label
	err    error
}

func (e *refusal) Error() string {
	return fmt.Sprintf("egress proxy refused %s: %v; scripts may reach public addresses only (operators can allow more with EGRESS_ALLOW)", e.host, e.err)
}
func (e *refusal) Unwrap() error { return e.err }

// proxyError answers a plain request whose destination was refused or could not be reached.
func (p *Proxy) proxyError(w http.ResponseWriter, r *http.Request, err error) {
	var ref *refusal
	if errors.As(err, &ref) {
		p.refused(w, r.URL.Host, ref)
		return
	}
	p.log.Info("egress request failed", "host", r.URL.Host, "error", err)
	http.Error(w, "egress proxy: "+err.Error(), http.StatusBadGateway)
}

func (p *Proxy) refused(w http.ResponseWriter, host string, ref *refusal) {
	p.cfg.Metrics.EgressDecision(false, ref.reason)
	p.log.Warn("egress refused", "host", host, "reason", ref.err.Error())
	w.Header().Set("X-Egress-Refused", ref.reason)
	http.Error(w, ref.Error(), http.StatusForbidden)
}

// connect serves CONNECT host:port: check, dial, then copy both ways.
func (p *Proxy) connect(w http.ResponseWriter, r *http.Request) {
	ctx, cancel := context.WithTimeout(r.Context(), dialTimeout+resolveTimeout)
	defer cancel()
	upstream, err := p.dial(ctx, "tcp", r.Host)
	if err != nil {
		var ref *refusal
		if errors.As(err, &ref) {
			p.refused(w, r.Host, ref)
			return
		}
		http.Error(w, "egress proxy: "+err.Error(), http.StatusBadGateway)
		return
	}
	hj, ok := w.(http.Hijacker)
	if !ok {
		upstream.Close()
		http.Error(w, "egress proxy: tunnels need HTTP/1.1", http.StatusHTTPVersionNotSupported)
		return
	}
	client, buf, err := hj.Hijack()
	if err != nil {
		upstream.Close()
		return
	}
	if !p.track(client, upstream) {
		return
	}
	defer p.untrack(client, upstream)
	if _, err := client.Write([]byte("HTTP/1.1 200 Connection established\r\n\r\n")); err != nil {
		return
	}
	done := make(chan struct{}, 2)
	go func() {
		// Bytes the client sent after the CONNECT line, already buffered, go first.
		if n := buf.Reader.Buffered(); n > 0 {
			b, _ := buf.Reader.Peek(n)
			_, _ = upstream.Write(b)
		}
		copyIdle(upstream, client)
		closeWrite(upstream)
		done <- struct{}{}
	}()
	go func() {
		copyIdle(client, upstream)
		closeWrite(client)
		done <- struct{}{}
	}()
	<-done
	<-done
}

func (p *Proxy) track(conns ...net.Conn) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		for _, c := range conns {
			c.Close()
		}
		return false
	}
	for _, c := range conns {
		p.tunnels[c] = struct{}{}
	}
	return true
}

func (p *Proxy) untrack(conns ...net.Conn) {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, c := range conns {
		c.Close()
		delete(p.tunnels, c)
	}
}

// copyIdle copies src to dst until EOF, an error, or tunnelIdle without data.
func copyIdle(dst, src net.Conn) {
	buf := make([]byte, 32<<10)
	for {
		_ = src.SetReadDeadline(time.Now().Add(tunnelIdle))
		n, err := src.Read(buf)
		if n > 0 {
			if _, werr := dst.Write(buf[:n]); werr != nil {
				return
			}
		}
		if err != nil {
			return
		}
	}
}

func closeWrite(c net.Conn) {
	if cw, ok := c.(interface{ CloseWrite() error }); ok {
		_ = cw.CloseWrite()
		return
	}
	_ = c.Close()
}

// dial resolves hostport, checks every address against the policy, and connects to a checked address (never
// resolving again, so a DNS answer that changes in between cannot slip a private address in).
func (p *Proxy) dial(ctx context.Context, network, hostport string) (net.Conn, error) {
	host, portText, err := net.SplitHostPort(hostport)
	if err != nil {
		return nil, &refusal{host: hostport, reason: "bad_request", err: err}
	}
	port, err := strconv.Atoi(portText)
	if err != nil || port < 1 || port > 65535 {
		return nil, &refusal{host: hostport, reason: "bad_request", err: fmt.Errorf("bad port %q", portText)}
	}
	addrs, err := p.resolve(ctx, host, port)
	if err != nil {
		return nil, err
	}
	p.cfg.Metrics.EgressDecision(true, "")
	d := net.Dialer{Timeout: dialTimeout}
	var firstErr error
	for _, a := range addrs {
		c, err := d.DialContext(ctx, "tcp", netip.AddrPortFrom(a, uint16(port)).String())
		if err == nil {
			return c, nil
		}
		if firstErr == nil {
			firstErr = err
		}
	}
	return nil, firstErr
}

// resolve turns host into the addresses to dial, refusing the whole request if any of them is protected.
func (p *Proxy) resolve(ctx context.Context, host string, port int) ([]netip.Addr, error) {
	name := strings.TrimSuffix(strings.ToLower(host), ".")
	if a, err := netip.ParseAddr(strings.TrimSuffix(strings.TrimPrefix(host, "["), "]")); err == nil {
		if err := p.cfg.Policy.check(a, port); err != nil {
			return nil, &refusal{host: host, reason: "private", err: err}
		}
		return []netip.Addr{a.Unmap()}, nil
	}
	if a, ok := parseNumericHost(name); ok {
		// 2852039166, 0251.0376.0251.0376 and the like: an address, however it is spelled.
		if err := p.cfg.Policy.check(a, port); err != nil {
			return nil, &refusal{host: host, reason: "private", err: fmt.Errorf("%q is the address %s, and %w", host, a, err)}
		}
		return []netip.Addr{a}, nil
	}
	if name == "" {
		return nil, &refusal{host: host, reason: "bad_request", err: errors.New("no host")}
	}
	ctx, cancel := context.WithTimeout(ctx, resolveTimeout)
	defer cancel()
	addrs, err := p.cfg.Resolve(ctx, name)
	if err != nil {
		return nil, &refusal{host: host, reason: "resolve", err: fmt.Errorf("cannot resolve %q: %w", host, err)}
	}
	if len(addrs) == 0 {
		return nil, &refusal{host: host, reason: "resolve", err: fmt.Errorf("%q has no addresses", host)}
	}
	if p.cfg.Policy.allowsName(name, port) {
		return addrs, nil
	}
	for _, a := range addrs {
		if err := p.cfg.Policy.check(a, port); err != nil {
			return nil, &refusal{host: host, reason: "private", err: fmt.Errorf("%q resolves to %s, and %w", host, a, err)}
		}
	}
	return addrs, nil
}
