package egress

import (
	"bufio"
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/scrapeplatform/platform/shared/config"
)

// recorder counts the proxy's decisions.
type recorder struct {
	mu       sync.Mutex
	refused  map[string]int
	accepted int
}

func (r *recorder) EgressDecision(allowed bool, reason string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if allowed {
		r.accepted++
		return
	}
	if r.refused == nil {
		r.refused = map[string]int{}
	}
	r.refused[reason]++
}

// setup starts an origin server (plain and TLS) on loopback, and a proxy that allows exactly those two.
func setup(t *testing.T) (proxy *Proxy, plain, secure *httptest.Server, rec *recorder) {
	t.Helper()
	mux := http.NewServeMux()
	mux.HandleFunc("/hello", func(w http.ResponseWriter, r *http.Request) { fmt.Fprint(w, "hello from the origin") })
	mux.HandleFunc("/redirect", func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, r.URL.Query().Get("to"), http.StatusFound)
	})
	plain = httptest.NewServer(mux)
	secure = httptest.NewTLSServer(mux)
	t.Cleanup(plain.Close)
	t.Cleanup(secure.Close)
	policy, err := ParsePolicy(plain.Listener.Addr().String() + "," + secure.Listener.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	rec = &recorder{}
	resolve := func(_ context.Context, host string) ([]netip.Addr, error) {
		switch host {
		case "metadata.test":
			return []netip.Addr{netip.MustParseAddr("169.254.169.254")}, nil
		case "mixed.test":
			return []netip.Addr{netip.MustParseAddr("93.184.215.14"), netip.MustParseAddr("10.0.0.1")}, nil
		case "localhost":
			return []netip.Addr{netip.MustParseAddr("127.0.0.1")}, nil
		}
		return nil, &net.DNSError{Err: "no such host", Name: host, IsNotFound: true}
	}
	proxy, err = Start(Config{Policy: policy, Resolve: resolve, Metrics: rec})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = proxy.Shutdown(context.Background()) })
	return proxy, plain, secure, rec
}

func client(t *testing.T, proxy *Proxy) *http.Client {
	u, _ := url.Parse(proxy.URL())
	return &http.Client{Transport: &http.Transport{
		Proxy:           http.ProxyURL(u),
		TLSClientConfig: &tls.Config{InsecureSkipVerify: true}, // the test's own self-signed origin
	}}
}

func TestProxyRefusesProtectedDestinations(t *testing.T) {
	t.Parallel()
	proxy, plain, secure, rec := setup(t)
	c := client(t, proxy)
	_, originPort, _ := net.SplitHostPort(plain.Listener.Addr().String())
	otherLoopback := freePort(t)

	get := func(u string) (int, string, error) {
		resp, err := c.Get(u)
		if err != nil {
			return 0, "", err
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b), nil
	}

	// Allowed: the origin the policy names, plain and through a tunnel.
	for _, u := range []string{plain.URL + "/hello", secure.URL + "/hello"} {
		if code, body, err := get(u); err != nil || code != 200 || body != "hello from the origin" {
			t.Fatalf("GET %s = %d %q %v", u, code, body, err)
		}
	}

	refused := []string{
		"http://169.254.169.254/latest/meta-data/iam/security-credentials/",
		"http://169.254.170.2/v2/credentials/x",
		"http://[fd00:ec2::254]/latest/meta-data/",
		"http://2852039166/latest/meta-data/",
		"http://0xA9FEA9FE/",
		"http://0251.0376.0251.0376/",
		"http://169.254.43518/",
		"http://[::ffff:169.254.169.254]/",
		"http://metadata.test/",
		"http://mixed.test/",
		"http://localhost:" + otherLoopback + "/", // a loopback admin port, by name
		"http://127.0.0.1:" + otherLoopback + "/", // and by address
		"http://[::1]:" + originPort + "/",        // the allowed port, but not the allowed address
		"http://127.1:" + otherLoopback + "/",
		"http://10.0.0.1/",
		"http://192.168.0.1/",
		"http://172.16.0.1/",
		plain.URL + "/redirect?to=" + url.QueryEscape("http://169.254.169.254/latest/meta-data/"),
	}
	for _, u := range refused {
		code, body, err := get(u)
		if err != nil || code != http.StatusForbidden || !strings.Contains(body, "egress proxy refused") {
			t.Errorf("GET %s = %d %q %v; want 403 from the proxy", u, code, body, err)
		}
	}
	for _, u := range []string{"https://169.254.169.254/", "https://[fd00:ec2::254]/", "https://metadata.test/",
		"https://127.0.0.1:" + otherLoopback + "/", secure.URL + "/redirect?to=" + url.QueryEscape("https://169.254.170.2/")} {
		if _, _, err := get(u); err == nil || !strings.Contains(err.Error(), "Forbidden") {
			t.Errorf("GET %s through a tunnel = %v; want the CONNECT refused", u, err)
		}
	}
	rec.mu.Lock()
	defer rec.mu.Unlock()
	if rec.refused["private"] < len(refused) {
		t.Errorf("refusals counted: %v", rec.refused)
	}
}

func TestProxyTunnelCarriesBytesBothWays(t *testing.T) {
	t.Parallel()
	proxy, plain, _, _ := setup(t)
	conn, err := net.Dial("tcp", strings.TrimPrefix(proxy.URL(), "http://"))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	target := plain.Listener.Addr().String()
	// The request line and the tunnelled request in one write: the proxy must forward what it buffered.
	fmt.Fprintf(conn, "CONNECT %s HTTP/1.1\r\nHost: %s\r\n\r\nGET /hello HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n", target, target)
	br := bufio.NewReader(conn)
	status, _ := br.ReadString('\n')
	if !strings.Contains(status, "200") {
		t.Fatalf("CONNECT answered %q", status)
	}
	rest, _ := io.ReadAll(br)
	if !strings.Contains(string(rest), "hello from the origin") {
		t.Fatalf("tunnel carried %q", rest)
	}
}

func TestProxyRefusesRequestsNotMeantForAProxy(t *testing.T) {
	t.Parallel()
	proxy, _, _, _ := setup(t)
	resp, err := http.Get(proxy.URL() + "/")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusBadRequest {
		t.Fatalf("origin-form request = %d", resp.StatusCode)
	}
}

func freePort(t *testing.T) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	_, port, _ := net.SplitHostPort(ln.Addr().String())
	return port
}

func TestLoadConfig(t *testing.T) {
	t.Parallel()
	env := func(kv map[string]string) *config.Env { return config.NewEnv(func(k string) string { return kv[k] }) }
	e := env(nil)
	if c := LoadConfig(e); e.Err() != nil || !c.Enabled || c.Policy.String() != (Policy{}).String() {
		t.Fatalf("defaults: %+v %v", c, e.Err())
	}
	e = env(map[string]string{"EGRESS_PROXY": "false", "EGRESS_ALLOW": "10.0.0.0/8"})
	if c := LoadConfig(e); e.Err() != nil || c.Enabled || !strings.Contains(c.Policy.String(), "10.0.0.0/8") {
		t.Fatalf("set: %+v %v", c, e.Err())
	}
	e = env(map[string]string{"EGRESS_PROXY": "perhaps", "EGRESS_ALLOW": "10.0.0.0/99"})
	LoadConfig(e)
	if err := e.Err(); err == nil || !strings.Contains(err.Error(), "EGRESS_PROXY") || !strings.Contains(err.Error(), "EGRESS_ALLOW") {
		t.Fatalf("errors: %v", err)
	}
}

// TestRefusalsSayWhatToDo checks the sentence a script sees, plain and through a tunnel: the target, the
// reason in words, and for loopback and private targets the EGRESS_ALLOW entry that allows it; a name that
// does not resolve is a 502, not a permission problem.
func TestRefusalsSayWhatToDo(t *testing.T) {
	t.Parallel()
	proxy, _, _, _ := setup(t)
	c := client(t, proxy)
	port := freePort(t)
	tests := []struct {
		url        string
		status     int
		header     string
		want, hide []string
	}{
		{"http://127.0.0.1:" + port + "/", 403, "X-Egress-Refused",
			[]string{"egress proxy refused 127.0.0.1:" + port, "127.0.0.1 is a loopback address", "EGRESS_ALLOW=127.0.0.1:" + port}, nil},
		{"http://localhost:" + port + "/", 403, "X-Egress-Refused",
			[]string{"localhost resolves to 127.0.0.1, a loopback address", "EGRESS_ALLOW=localhost:" + port}, nil},
		{"http://[::1]:" + port + "/", 403, "X-Egress-Refused", []string{"::1 is a loopback address", "EGRESS_ALLOW=[::1]:" + port}, nil},
		{"http://10.1.2.3/", 403, "X-Egress-Refused", []string{"10.1.2.3 is a private address (10.0.0.0/8)", "EGRESS_ALLOW=10.1.2.3:80"}, nil},
		{"http://169.254.169.254/latest/", 403, "X-Egress-Refused",
			[]string{"169.254.169.254 is a link-local address", "public addresses only"}, []string{"EGRESS_ALLOW"}},
		{"http://[fd00:ec2::254]/", 403, "X-Egress-Refused", []string{"the EC2 IPv6 metadata endpoint"}, []string{"EGRESS_ALLOW"}},
		{"http://nowhere.test/", 502, "X-Egress-Error",
			[]string{"egress proxy cannot reach nowhere.test:80: nowhere.test does not resolve"}, []string{"refused", "EGRESS_ALLOW"}},
	}
	for _, tt := range tests {
		resp, err := c.Get(tt.url)
		if err != nil {
			t.Fatalf("GET %s: %v", tt.url, err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		for _, text := range []string{string(body), resp.Header.Get(tt.header), resp.Status} {
			for _, w := range tt.want {
				if !strings.Contains(text, w) {
					t.Errorf("GET %s: %q lacks %q", tt.url, text, w)
				}
			}
			for _, h := range tt.hide {
				if strings.Contains(text, h) {
					t.Errorf("GET %s: %q says %q", tt.url, text, h)
				}
			}
		}
		if resp.StatusCode != tt.status {
			t.Errorf("GET %s = %d, want %d", tt.url, resp.StatusCode, tt.status)
		}
		// The same target through a tunnel: the client's error carries the status line's reason phrase.
		https := strings.Replace(tt.url, "http://", "https://", 1)
		_, err = c.Get(https)
		if err == nil {
			t.Fatalf("GET %s through a tunnel succeeded", https)
		}
		for _, w := range tt.want {
			w = strings.Replace(w, ":80", ":443", 1)
			if !strings.Contains(err.Error(), w) {
				t.Errorf("GET %s through a tunnel: %v lacks %q", https, err, w)
			}
		}
	}
}

// TestProxyCapsConnections checks that a connection over MaxConns is answered 503 at once, and that closing
// one frees its slot.
func TestProxyCapsConnections(t *testing.T) {
	t.Parallel()
	rec := &recorder{}
	proxy, err := Start(Config{MaxConns: 2, Metrics: rec})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = proxy.Shutdown(context.Background()) })
	addr := strings.TrimPrefix(proxy.URL(), "http://")
	dial := func() net.Conn {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		return c
	}
	// An origin-form request is answered 400 by the handler: proof the connection got a slot.
	served := func(c net.Conn) string {
		fmt.Fprint(c, "GET / HTTP/1.1\r\nHost: x\r\n\r\n")
		status, err := bufio.NewReader(c).ReadString('\n')
		if err != nil {
			t.Fatalf("read: %v", err)
		}
		return status
	}
	first, second := dial(), dial()
	if s := served(first); !strings.Contains(s, "400") {
		t.Fatalf("first connection: %q", s)
	}
	if s := served(second); !strings.Contains(s, "400") {
		t.Fatalf("second connection: %q", s)
	}
	third := dial()
	if s := served(third); !strings.Contains(s, "503") || !strings.Contains(s, "limit of 2 open connections") {
		t.Fatalf("third connection: %q", s)
	}
	first.Close()
	// The slot frees once the server sees the close; until then a new connection may still be turned away.
	for {
		if s := served(dial()); strings.Contains(s, "400") {
			break
		}
	}
	rec.mu.Lock()
	defer rec.mu.Unlock()
	if rec.refused["limit"] == 0 {
		t.Errorf("refusals counted: %v", rec.refused)
	}
}

// TestProxyClosesSilentConnections checks the header timeout: a client that connects and sends nothing is
// disconnected.
func TestProxyClosesSilentConnections(t *testing.T) {
	t.Parallel()
	proxy, err := Start(Config{HeaderTimeout: 50 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = proxy.Shutdown(context.Background()) })
	c, err := net.Dial("tcp", strings.TrimPrefix(proxy.URL(), "http://"))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	fmt.Fprint(c, "GET http://example.com/ HTTP/1.1\r\n") // and never the rest of the header
	if _, err := io.ReadAll(c); err != nil {
		t.Fatalf("read: %v", err)
	}
}

// TestRefusalIsAttributedToTheRun checks that a run that names itself in the proxy URL (RunProxyURL) finds
// its last refusal, plain and through a tunnel, and that no other run does.
func TestRefusalIsAttributedToTheRun(t *testing.T) {
	t.Parallel()
	proxy, _, _, _ := setup(t)
	port := freePort(t)
	clientFor := func(proxyURL string) *http.Client {
		u, err := url.Parse(proxyURL)
		if err != nil {
			t.Fatal(err)
		}
		return &http.Client{Transport: &http.Transport{Proxy: http.ProxyURL(u)}}
	}
	before := time.Now()
	cold := clientFor(RunProxyURL(proxy.URL(), "fetch", "req-1"))
	resp, err := cold.Get("http://127.0.0.1:" + port + "/")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	got, ok := proxy.Refusal("fetch", "req-1", before)
	if !ok || !strings.Contains(got, "127.0.0.1 is a loopback address") || !strings.Contains(got, "EGRESS_ALLOW=127.0.0.1:"+port) {
		t.Fatalf("Refusal(fetch, req-1) = %q, %v", got, ok)
	}
	if got, ok := proxy.Refusal("fetch", "req-2", before); ok {
		t.Errorf("another run of the script sees %q", got)
	}
	if got, ok := proxy.Refusal("other", "req-1", before); ok {
		t.Errorf("another script sees %q", got)
	}
	if got, ok := proxy.Refusal("fetch", "req-1", time.Now().Add(time.Hour)); ok {
		t.Errorf("a run that started after the refusal sees %q", got)
	}

	warm := clientFor(RunProxyURL(proxy.URL(), "async-fetch", ""))
	if _, err := warm.Get("https://nowhere.test/"); err == nil {
		t.Fatal("a tunnel to a name that does not resolve succeeded")
	}
	got, ok = proxy.Refusal("async-fetch", "req-9", before)
	if !ok || !strings.Contains(got, "nowhere.test does not resolve") {
		t.Fatalf("Refusal of a warm run = %q, %v", got, ok)
	}
}

// TestProxyServesAnotherListener: Serve serves the proxy on a listener of the caller's (a run's, made in its
// network namespace) under the same connection cap, until that listener is closed.
func TestProxyServesAnotherListener(t *testing.T) {
	t.Parallel()
	proxy, err := Start(Config{MaxConns: 1})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = proxy.Shutdown(context.Background()) })
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	proxy.Serve(ln)
	served := func(addr string) string {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			return "dial: " + err.Error()
		}
		t.Cleanup(func() { c.Close() })
		fmt.Fprint(c, "GET / HTTP/1.1\r\nHost: x\r\n\r\n")
		status, err := bufio.NewReader(c).ReadString('\n')
		if err != nil {
			return "read: " + err.Error()
		}
		return status
	}
	if s := served(ln.Addr().String()); !strings.Contains(s, "400") {
		t.Fatalf("on the other listener: %q; want the proxy's 400 for an origin-form request", s)
	}
	// That connection holds the one slot: the proxy's own listener turns the next away.
	if s := served(strings.TrimPrefix(proxy.URL(), "http://")); !strings.Contains(s, "503") {
		t.Fatalf("over the shared cap: %q; want 503", s)
	}
	addr := ln.Addr().String()
	_ = ln.Close()
	if s := served(addr); !strings.HasPrefix(s, "dial:") {
		t.Fatalf("after the listener closed: %q; want no answer", s)
	}
}
