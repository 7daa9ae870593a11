package egress

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httputil"
	"net/netip"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/scrapeplatform/platform/shared/netguard"
)

// Timeouts of the proxy.
const (
	dialTimeout    = 10 * time.Second
	resolveTimeout = 5 * time.Second
	// tunnelIdle ends a CONNECT tunnel that carried nothing for this long.
	tunnelIdle = 2 * time.Minute
	// turnAwayTimeout bounds writing the 503 to a connection over the limit.
	turnAwayTimeout = time.Second
	// maxHeaderBytes bounds a request's header block.
	maxHeaderBytes = 64 << 10
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
	// MaxConns caps the client connections open at once, tunnels included (default 256); a connection over
	// the cap is answered 503 at once and closed.
	MaxConns int
	// HeaderTimeout bounds reading a request's header (default 10 s); IdleTimeout closes a kept-alive client
	// connection that sent nothing for that long (default 60 s). Tunnels have their own idle limit (2 min).
	HeaderTimeout, IdleTimeout time.Duration
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
	if c.MaxConns <= 0 {
		c.MaxConns = 256
	}
	if c.HeaderTimeout <= 0 {
		c.HeaderTimeout = 10 * time.Second
	}
	if c.IdleTimeout <= 0 {
		c.IdleTimeout = 60 * time.Second
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
	ln    *cappedListener
	srv   *http.Server
	proxy *httputil.ReverseProxy

	runs    runLog
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
	p := &Proxy{cfg: cfg, log: log.With("component", "egress"), tunnels: map[net.Conn]struct{}{}}
	p.ln = &cappedListener{Listener: ln, slots: make(chan struct{}, cfg.MaxConns), turnAway: p.turnAway}
	transport := &http.Transport{
		Proxy:             nil, // never chain to the worker's own proxy settings
		DialContext:       p.dial,
		ForceAttemptHTTP2: false,
		// Scrapes fetch many pages of one site at once: keep connections to it for the next fetches rather
		// than dial (and make the site accept) a new one each time; the default keeps 2 per host.
		MaxIdleConns:          256,
		MaxIdleConnsPerHost:   32,
		IdleConnTimeout:       30 * time.Second,
		TLSHandshakeTimeout:   10 * time.Second,
		ResponseHeaderTimeout: 0, // the script's own timeout bounds the wait
		DisableCompression:    true,
	}
	p.proxy = &httputil.ReverseProxy{
		Rewrite: func(pr *httputil.ProxyRequest) {
			pr.Out.URL = pr.In.URL
			pr.Out.Host = pr.In.Host
			pr.Out.Header.Del("Proxy-Authorization") // the run's name (see Refusal), never the site's business
			pr.Out.Header.Del("Proxy-Connection")
		},
		Transport:    transport,
		ErrorHandler: p.proxyError,
		ErrorLog:     slog.NewLogLogger(p.log.Handler(), slog.LevelWarn),
	}
	// No ReadTimeout or WriteTimeout: a proxied download may rightly take long, and the script's own timeout
	// bounds it.
	p.srv = &http.Server{
		Handler:           p,
		ReadHeaderTimeout: cfg.HeaderTimeout,
		IdleTimeout:       cfg.IdleTimeout,
		MaxHeaderBytes:    maxHeaderBytes,
		ErrorLog:          slog.NewLogLogger(p.log.Handler(), slog.LevelDebug),
	}
	go func() { _ = p.srv.Serve(p.ln) }()
	return p, nil
}

// Serve serves the proxy on another listener as well, until ln is closed or the proxy shut down: the
// runner hands it the listener it made inside a run's network namespace (127.0.0.1 there), which is that
// run's only way out. Its connections count against the same MaxConns as the proxy's own listener.
func (p *Proxy) Serve(ln net.Listener) {
	capped := &cappedListener{Listener: ln, slots: p.ln.slots, turnAway: p.turnAway}
	go func() { _ = p.srv.Serve(capped) }()
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
	r = withRunName(r) // before the reverse proxy drops Proxy-Authorization
	if r.Method == http.MethodConnect {
		p.connect(w, r)
		return
	}
	if !r.URL.IsAbs() || (r.URL.Scheme != "http" && r.URL.Scheme != "https") || r.URL.Host == "" {
		p.refused(w, r, &refusal{target: r.URL.String(), reason: "bad_request", status: http.StatusBadRequest,
			why: "send requests in absolute form (http://host/path), or CONNECT host:port"})
		return
	}
	// The destination is checked again when the transport dials (redirects are new requests, checked too).
	p.proxy.ServeHTTP(w, r)
}

// refusal is a destination the proxy will not (a policy decision) or cannot (a name that does not resolve)
// reach, with the sentence the script sees.
type refusal struct {
	target string // host:port as the script named it
	reason string // metric label: "private", "resolve" or "bad_request"
	status int    // 403 for a policy decision, 502 for a name that does not resolve, 400 for a bad target
	why    string // "127.0.0.1 is a loopback address", "example.com does not resolve"
	allow  string // the EGRESS_ALLOW entry that would allow the target, or ""
}

func (e *refusal) Error() string {
	verb := "refused"
	if e.status == http.StatusBadGateway {
		verb = "cannot reach"
	}
	s := fmt.Sprintf("egress proxy %s %s: %s", verb, e.target, e.why)
	switch {
	case e.allow != "":
		s += "; to allow it, run the worker with EGRESS_ALLOW=" + e.allow
	case e.status == http.StatusForbidden:
		s += "; scripts may reach public addresses only"
	}
	return s
}

// header is the response header that marks the answer as the proxy's own, not the site's.
func (e *refusal) header() string {
	if e.status == http.StatusForbidden {
		return "X-Egress-Refused"
	}
	return "X-Egress-Error"
}

// proxyError answers a plain request whose destination was refused or could not be reached.
func (p *Proxy) proxyError(w http.ResponseWriter, r *http.Request, err error) {
	var ref *refusal
	if errors.As(err, &ref) {
		p.refused(w, r, ref)
		return
	}
	p.unreachable(w, r, r.URL.Host, err)
}

// unreachable answers 502 for a destination the policy allows but that did not answer.
func (p *Proxy) unreachable(w http.ResponseWriter, r *http.Request, target string, err error) {
	p.log.Info("egress request failed", "host", target, "error", err)
	var op *net.OpError
	if errors.As(err, &op) && op.Err != nil {
		err = op.Err // "connect: connection refused" rather than the whole dial chain
	}
	sentence := fmt.Sprintf("egress proxy cannot reach %s: %v", target, err)
	p.runs.record(r.Context(), sentence)
	answer(w, http.StatusBadGateway, "X-Egress-Error", sentence)
}

func (p *Proxy) refused(w http.ResponseWriter, r *http.Request, ref *refusal) {
	p.cfg.Metrics.EgressDecision(false, ref.reason)
	p.log.Warn("egress refused", "host", ref.target, "reason", ref.why)
	p.runs.record(r.Context(), ref.Error())
	answer(w, ref.status, ref.header(), ref.Error())
}

// answer writes the proxy's own error response. The sentence goes in three places, because scripts' HTTP
// libraries show different parts of an error: the status line's reason phrase ("403 Forbidden: egress proxy
// refused ..."), which urllib, requests, httpx and aiohttp put in the exception a CONNECT refusal raises and
// which urllib's HTTPError shows; the header (X-Egress-Refused or X-Egress-Error), which marks the answer as
// the proxy's and not the site's; and the body. Net/http cannot send its own reason phrase, so answer takes
// the connection over and writes the response itself, then closes the connection.
func answer(w http.ResponseWriter, status int, header, sentence string) {
	line := headerSafe(sentence)
	hj, ok := w.(http.Hijacker)
	if !ok {
		w.Header().Set(header, line)
		http.Error(w, sentence, status)
		return
	}
	conn, buf, err := hj.Hijack()
	if err != nil {
		w.Header().Set(header, line)
		http.Error(w, sentence, status)
		return
	}
	defer conn.Close()
	body := sentence + "\n"
	_ = conn.SetDeadline(time.Now().Add(turnAwayTimeout))
	fmt.Fprintf(buf, "HTTP/1.1 %d %s: %s\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: %d\r\n%s: %s\r\nConnection: close\r\n\r\n%s",
		status, http.StatusText(status), line, len(body), header, line, body)
	if buf.Flush() == nil {
		linger(conn)
	}
}

// linger ends the proxy's side of a connection it answered, and reads what the client still sends (a
// request body) for a moment before the caller closes it, so the close does not reset the connection
// before the client has read the answer.
func linger(c net.Conn) {
	closeWrite(c)
	_, _ = io.Copy(io.Discard, io.LimitReader(c, 1<<20))
}

// headerSafe returns s with every byte that may not appear in a status line or header value replaced.
func headerSafe(s string) string {
	b := []byte(s)
	for i, c := range b {
		if c < 0x20 || c > 0x7e {
			b[i] = '?'
		}
	}
	return string(b)
}

// connect serves CONNECT host:port: check, dial, then copy both ways.
func (p *Proxy) connect(w http.ResponseWriter, r *http.Request) {
	ctx, cancel := context.WithTimeout(r.Context(), dialTimeout+resolveTimeout)
	defer cancel()
	upstream, err := p.dial(ctx, "tcp", r.Host)
	if err != nil {
		var ref *refusal
		if errors.As(err, &ref) {
			p.refused(w, r, ref)
			return
		}
		p.unreachable(w, r, r.Host, err)
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
		return nil, &refusal{target: hostport, reason: "bad_request", status: http.StatusBadRequest, why: err.Error()}
	}
	port, err := strconv.Atoi(portText)
	if err != nil || port < 1 || port > 65535 {
		return nil, &refusal{target: hostport, reason: "bad_request", status: http.StatusBadRequest, why: fmt.Sprintf("bad port %q", portText)}
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
	target := net.JoinHostPort(host, strconv.Itoa(port))
	// private is the refusal of an address in a protected range: why says it, and for ranges where real
	// services live, allow names the EGRESS_ALLOW entry (h, the host as the operator would write it, and the port).
	private := func(re *RefusedError, why, h string) *refusal {
		ref := &refusal{target: target, reason: "private", status: http.StatusForbidden, why: why}
		if re.Hint {
			ref.allow = net.JoinHostPort(h, strconv.Itoa(port))
		}
		return ref
	}
	name := strings.TrimSuffix(strings.ToLower(host), ".")
	if a, err := netip.ParseAddr(strings.TrimSuffix(strings.TrimPrefix(host, "["), "]")); err == nil {
		var re *RefusedError
		if err := p.cfg.Policy.Check(a, port); errors.As(err, &re) {
			return nil, private(re, re.Error(), a.Unmap().String())
		}
		return []netip.Addr{a.Unmap()}, nil
	}
	if a, ok := netguard.ParseNumericHost(name); ok {
		// 2852039166, 0251.0376.0251.0376 and the like: an address, however it is spelled.
		var re *RefusedError
		if err := p.cfg.Policy.Check(a, port); errors.As(err, &re) {
			return nil, private(re, fmt.Sprintf("%q is the address %s, %s", host, a, re.Why), a.String())
		}
		return []netip.Addr{a}, nil
	}
	if name == "" {
		return nil, &refusal{target: target, reason: "bad_request", status: http.StatusBadRequest, why: "no host"}
	}
	ctx, cancel := context.WithTimeout(ctx, resolveTimeout)
	defer cancel()
	addrs, err := p.cfg.Resolve(ctx, name)
	if err != nil || len(addrs) == 0 {
		return nil, &refusal{target: target, reason: "resolve", status: http.StatusBadGateway, why: notResolved(host, err)}
	}
	if p.cfg.Policy.AllowsName(name, port) {
		return addrs, nil
	}
	for _, a := range addrs {
		var re *RefusedError
		if err := p.cfg.Policy.Check(a, port); errors.As(err, &re) {
			return nil, private(re, fmt.Sprintf("%s resolves to %s, %s", host, re.Addr, re.Why), name)
		}
	}
	return addrs, nil
}

// notResolved says why host has no address: "example.com does not resolve" when the name does not exist,
// the resolver's error otherwise (a timeout, an unreachable DNS server).
func notResolved(host string, err error) string {
	var dnsErr *net.DNSError
	switch {
	case err == nil:
		return host + " resolves to no address"
	case errors.As(err, &dnsErr) && dnsErr.IsNotFound:
		return host + " does not resolve (no such host)"
	case errors.As(err, &dnsErr) && dnsErr.IsTimeout:
		return host + " could not be resolved: the DNS server did not answer in time"
	case errors.Is(err, context.DeadlineExceeded):
		return host + " could not be resolved in time"
	}
	return fmt.Sprintf("%s could not be resolved: %v", host, err)
}

// cappedListener hands the server at most cap(slots) connections at once; the connections over the cap are
// answered 503 at once by turnAway and closed.
type cappedListener struct {
	net.Listener
	slots    chan struct{}
	turnAway func(net.Conn)
}

// Accept implements net.Listener.
func (l *cappedListener) Accept() (net.Conn, error) {
	for {
		c, err := l.Listener.Accept()
		if err != nil {
			return nil, err
		}
		select {
		case l.slots <- struct{}{}:
			return &slotConn{Conn: c, release: sync.OnceFunc(func() { <-l.slots })}, nil
		default:
			go l.turnAway(c)
		}
	}
}

// slotConn frees its slot in the cappedListener when closed (a hijacked tunnel's connection included).
type slotConn struct {
	net.Conn
	release func()
}

// Close implements net.Conn.
func (c *slotConn) Close() error {
	err := c.Conn.Close()
	c.release()
	return err
}

// CloseWrite half-closes the connection, as a tunnel's end does when its other side is done.
func (c *slotConn) CloseWrite() error {
	if cw, ok := c.Conn.(interface{ CloseWrite() error }); ok {
		return cw.CloseWrite()
	}
	return c.Close()
}

// turnAway answers a connection over MaxConns with 503 and closes it.
func (p *Proxy) turnAway(c net.Conn) {
	defer c.Close()
	p.cfg.Metrics.EgressDecision(false, "limit")
	p.log.Warn("egress proxy at its connection limit", "max_conns", p.cfg.MaxConns)
	sentence := fmt.Sprintf("egress proxy is at its limit of %d open connections; try again when the script's other requests are done", p.cfg.MaxConns)
	_ = c.SetDeadline(time.Now().Add(turnAwayTimeout))
	fmt.Fprintf(c, "HTTP/1.1 503 Service Unavailable: %s\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: %d\r\nX-Egress-Error: %s\r\nConnection: close\r\n\r\n%s\n",
		sentence, len(sentence)+1, sentence, sentence)
	linger(c)
}
