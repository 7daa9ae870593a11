package egress

import (
	"bufio"
	"context"
	"crypto/tls"
	"errors"
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

	"github.com/scrapeplatform/platform/shared/config"
)

func TestPolicyCheck(t *testing.T) {
	t.Parallel()
	p, err := ParsePolicy("10.20.0.0/16, 192.168.1.5:8080 [fd00::7]:443 internal.example.com .corp.example")
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		addr string
		port int
		ok   bool
	}{
		{"93.184.215.14", 80, true},
		{"2606:2800:21f:cb07:6820:80da:af6b:8b2c", 443, true},
		{"169.254.169.254", 80, false},
		{"169.254.170.2", 80, false},
		{"fd00:ec2::254", 80, false},
		{"127.0.0.1", 8080, false},
		{"127.1.2.3", 80, false},
		{"::1", 80, false},
		{"::ffff:169.254.169.254", 80, false},
		{"::ffff:127.0.0.1", 80, false},
		{"64:ff9b::a9fe:a9fe", 80, false}, // NAT64 of 169.254.169.254
		{"64:ff9b::5db8:d70e", 80, true},  // NAT64 of a public address
		{"2002:a9fe:a9fe::1", 80, false},  // 6to4 of 169.254.169.254
		{"0.0.0.0", 80, false},
		{"::", 80, false},
		{"10.0.0.1", 80, false},
		{"10.20.3.4", 80, true}, // allowed range
		{"172.16.5.5", 80, false},
		{"192.168.1.5", 8080, true}, // allowed address and port
		{"192.168.1.5", 80, false},
		{"100.64.1.1", 80, false},
		{"fe80::1", 80, false},
		{"fd00::7", 443, true},
		{"fd00::7", 80, false},
		{"224.0.0.1", 80, false},
		{"255.255.255.255", 80, false},
	}
	for _, tt := range tests {
		err := p.check(netip.MustParseAddr(tt.addr), tt.port)
		if (err == nil) != tt.ok {
			t.Errorf("check(%s, %d) = %v, want allowed=%v", tt.addr, tt.port, err, tt.ok)
		}
	}
	for host, want := range map[string]bool{
		"internal.example.com": true, "a.corp.example": true, "corp.example": false, "example.com": false,
		"internal.example.com.evil": false,
	} {
		if got := p.allowsName(host, 443); got != want {
			t.Errorf("allowsName(%q) = %v, want %v", host, got, want)
		}
	}
	if _, err := ParsePolicy("10.0.0.0/8, bad/range/x, 1.2.3.4:99999"); err == nil || strings.Count(err.Error(), "EGRESS_ALLOW") != 2 {
		t.Errorf("ParsePolicy of two bad entries = %v", err)
	}
}

func TestParseNumericHost(t *testing.T) {
	t.Parallel()
	for in, want := range map[string]string{
		"2852039166":          "169.254.169.254",
		"0xA9FEA9FE":          "169.254.169.254",
		"0251.0376.0251.0376": "169.254.169.254",
		"0xa9.0xfe.0xa9.0xfe": "169.254.169.254",
		"169.254.43518":       "169.254.169.254",
		"169.16689662":        "169.254.169.254",
		"127.1":               "127.0.0.1",
		"0":                   "0.0.0.0",
		"017700000001":        "127.0.0.1",
	} {
		got, ok := parseNumericHost(in)
		if !ok || got.String() != want {
			t.Errorf("parseNumericHost(%q) = %v, %v; want %s", in, got, ok, want)
		}
	}
	for _, in := range []string{"example.com", "1.2.3.4.5", "256.1.1.1", "08.1.1.1", "1..1", "", "4294967296", "1.2.3.256"} {
		if got, ok := parseNumericHost(in); ok {
			t.Errorf("parseNumericHost(%q) = %v, want not numeric", in, got)
		}
	}
}

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
		return nil, errors.New("no such host")
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
