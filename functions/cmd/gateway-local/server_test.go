package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/scrapeplatform/platform/functions/gateway"
	"github.com/scrapeplatform/platform/functions/gateway/localedge"
	"github.com/scrapeplatform/platform/shared/auth"
	"github.com/scrapeplatform/platform/shared/broker"
	"github.com/scrapeplatform/platform/shared/brokertest"
	"github.com/scrapeplatform/platform/shared/testlog"
)

const testSecret = "0123456789abcdef0123456789abcdef-test"

// served is a gateway-local HTTP server on a loopback port, with the real handler and a real broker.
type served struct {
	addr  string
	token string
	ln    *capListener
}

// serve starts the server as run does (newServer, newCapListener) with the settings in env.
func serve(t *testing.T, env map[string]string, maxConns int) *served {
	t.Helper()
	url := brokertest.URL(t)
	queue := brokertest.Name("test-gwlocal")
	topo := broker.NewTopology(queue)
	brokertest.DeleteQueues(t, url, []string{topo.TaskQueue, topo.DeadLetterQueue}, []string{topo.DeadLetterExchange})
	vars := map[string]string{"RABBITMQ_URL": url, "RABBITMQ_TASK_QUEUE": queue, "JWT_SECRET": testSecret}
	for k, v := range env {
		vars[k] = v
	}
	cfg, err := localedge.LoadConfig(func(k string) string { return vars[k] })
	if err != nil {
		t.Fatal(err)
	}
	log := testlog.New(t, slog.LevelWarn)
	h, client, err := localedge.Build(cfg, "test-gwlocal", log, nil)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { _ = client.Run(ctx); close(done) }()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	if maxConns == 0 {
		maxConns = cfg.MaxConnections
	}
	capped := newCapListener(ln, maxConns, log)
	srv := newServer(cfg, h)
	go func() { _ = srv.Serve(capped) }()
	t.Cleanup(func() { _ = srv.Close(); cancel(); <-done })
	for end := time.Now().Add(10 * time.Second); !client.Connected(); time.Sleep(20 * time.Millisecond) {
		if time.Now().After(end) {
			t.Fatal("broker client did not connect")
		}
	}
	tok, err := auth.IssueHS256([]byte(testSecret), auth.Claims{Subject: "tester"}, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	return &served{addr: ln.Addr().String(), token: tok, ln: capped}
}

// dial opens a raw connection and writes s.
func (s *served) dial(t *testing.T, raw string) net.Conn {
	t.Helper()
	c, err := net.Dial("tcp", s.addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close() })
	if raw != "" {
		if _, err := io.WriteString(c, raw); err != nil {
			t.Fatal(err)
		}
	}
	return c
}

// answer reads one response from c; body is decoded when it is JSON.
func answer(t *testing.T, r *bufio.Reader) (*http.Response, map[string]any) {
	t.Helper()
	resp, err := http.ReadResponse(r, nil)
	if err != nil {
		t.Fatalf("read answer: %v", err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	var m map[string]any
	_ = json.Unmarshal(raw, &m)
	return resp, m
}

// closedAfter reports whether the server closed c after its answer: the next read ends with EOF (or a
// reset, when the server closed with bytes of the body still unread), not data. The deadline only guards
// against a hang.
func closedAfter(c net.Conn, r *bufio.Reader) bool {
	_ = c.SetReadDeadline(time.Now().Add(time.Minute))
	_, err := r.ReadByte()
	return err == io.EOF || errors.Is(err, syscall.ECONNRESET)
}

func (s *served) health(t *testing.T) (int, map[string]any) {
	t.Helper()
	client := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}, Timeout: 30 * time.Second}
	resp, err := client.Get("http://" + s.addr + "/health")
	if err != nil {
		t.Fatalf("GET /health: %v", err)
	}
	defer resp.Body.Close()
	var m map[string]any
	_ = json.NewDecoder(resp.Body).Decode(&m)
	return resp.StatusCode, m
}

// scrapeHead is the start of a POST /scrape whose body (of length n) has not been sent yet.
func scrapeHead(token string, n int) string {
	auth := ""
	if token != "" {
		auth = "Authorization: Bearer " + token + "\r\n"
	}
	return fmt.Sprintf("POST /scrape HTTP/1.1\r\nHost: gw\r\n%sContent-Type: application/json\r\nContent-Length: %d\r\n\r\n", auth, n)
}

// Many connections whose bodies stall do not stop the gateway from answering /health: 10,000 of them (the
// issue's figure; GATEWAY_STALL_CONNS changes it), held by a client in another process (this test binary
// again: TestMain runs stallClient), so that the gateway's process holds only its own end of each.
func TestStalledBodiesLeaveHealthServed(t *testing.T) {
	n := 10000
	if v, err := strconv.Atoi(os.Getenv("GATEWAY_STALL_CONNS")); err == nil && v > 0 {
		n = v
	}
	s := serve(t, map[string]string{"GATEWAY_BODY_TIMEOUT": "5m"}, 0)
	if cap(s.ln.slots) < n {
		t.Fatalf("the gateway admits %d connections at most here (descriptor limit); %d asked", cap(s.ln.slots), n)
	}
	client := exec.Command(os.Args[0])
	client.Env = append(os.Environ(), "STALL_CLIENT_ADDR="+s.addr, "STALL_CLIENT_N="+strconv.Itoa(n),
		"STALL_CLIENT_HEAD="+scrapeHead(s.token, 100)+`{"script_name":`)
	stdin, err := client.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	client.Stdout, client.Stderr = &out, &out
	if err := client.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan struct{})
	go func() { _ = client.Wait(); close(exited) }()
	t.Cleanup(func() { _ = stdin.Close(); <-exited }) // EOF on its stdin ends the client
	// Every one of them is held by the server (accepted, its handler waiting for the body).
	for end := time.Now().Add(3 * time.Minute); len(s.ln.slots) < n; time.Sleep(20 * time.Millisecond) {
		select {
		case <-exited:
			t.Fatalf("the client ended with %d of %d connections held: %s", len(s.ln.slots), n, out.String())
		default:
		}
		if time.Now().After(end) {
			t.Fatalf("%d of %d connections held after 3 minutes", len(s.ln.slots), n)
		}
	}
	code, m := s.health(t)
	if code != http.StatusOK || m["status"] != "healthy" {
		t.Fatalf("/health with %d stalled bodies: %d %v", n, code, m)
	}
	t.Logf("/health answered %d with %d stalled connections held", code, len(s.ln.slots))
}

// TestMain runs the stall client instead of the tests when TestStalledBodiesLeaveHealthServed starts this
// binary as its client process.
func TestMain(m *testing.M) {
	if addr := os.Getenv("STALL_CLIENT_ADDR"); addr != "" {
		if err := stallClient(addr); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// stallClient opens STALL_CLIENT_N connections to addr, sends STALL_CLIENT_HEAD on each and holds them
// until its standard input ends.
func stallClient(addr string) error {
	n, _ := strconv.Atoi(os.Getenv("STALL_CLIENT_N"))
	head := os.Getenv("STALL_CLIENT_HEAD")
	conns := make([]net.Conn, 0, n)
	for range n {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			return fmt.Errorf("dial after %d connections: %w", len(conns), err)
		}
		conns = append(conns, c)
		if _, err := io.WriteString(c, head); err != nil {
			return err
		}
	}
	_, _ = io.Copy(io.Discard, os.Stdin)
	for _, c := range conns {
		_ = c.Close()
	}
	return nil
}

// A body that stops arriving is answered 408 request_timeout once GATEWAY_BODY_TIMEOUT passes, and the
// connection is closed.
func TestStalledBodyIsAnswered(t *testing.T) {
	t.Parallel()
	s := serve(t, map[string]string{"GATEWAY_BODY_TIMEOUT": "300ms"}, 0)
	c := s.dial(t, scrapeHead(s.token, 100)+`{"script_name":`)
	r := bufio.NewReader(c)
	resp, m := answer(t, r)
	if resp.StatusCode != http.StatusRequestTimeout || m["error_code"] != "request_timeout" || !resp.Close {
		t.Fatalf("%d %v close=%v", resp.StatusCode, m, resp.Close)
	}
	if !closedAfter(c, r) {
		t.Fatal("the connection stayed open")
	}
}

// An answer that needs no body (401, 413) is sent before the body arrives, and the connection is closed
// rather than held for the rest. The body timeout is the longest allowed (5 min) here: the answers come
// without waiting for it.
func TestEarlyAnswersCloseTheConnection(t *testing.T) {
	t.Parallel()
	s := serve(t, map[string]string{"GATEWAY_BODY_TIMEOUT": "5m"}, 0)
	for name, tc := range map[string]struct {
		raw    string
		status int
		code   string
	}{
		"no token": {scrapeHead("", 1000) + `{"script_name":`, http.StatusUnauthorized, "unauthorized"},
		"too large": {scrapeHead(s.token, 300000) + `{"script_name":"echo","parameters":{"a":"` + strings.Repeat("a", 262200),
			http.StatusRequestEntityTooLarge, "payload_too_large"},
	} {
		c := s.dial(t, tc.raw)
		r := bufio.NewReader(c)
		resp, m := answer(t, r)
		if resp.StatusCode != tc.status || m["error_code"] != tc.code || !resp.Close {
			t.Errorf("%s: %d %v close=%v", name, resp.StatusCode, m, resp.Close)
			continue
		}
		if !closedAfter(c, r) {
			t.Errorf("%s: the connection stayed open", name)
		}
	}
	// A complete body keeps the connection: two requests on one.
	body := `{"script_name":"../x"}`
	r := bufio.NewReader(s.dial(t, scrapeHead(s.token, len(body))+body+scrapeHead(s.token, len(body))+body))
	for i := range 2 {
		if resp, m := answer(t, r); resp.StatusCode != http.StatusUnprocessableEntity || resp.Close {
			t.Fatalf("request %d: %d %v close=%v", i, resp.StatusCode, m, resp.Close)
		}
	}
}

// The header section is limited to the documented 10 KiB: 12 KB of headers are refused (431), 9 KB pass.
func TestHeaderLimit(t *testing.T) {
	t.Parallel()
	s := serve(t, nil, 0)
	get := func(pad int) int {
		r := bufio.NewReader(s.dial(t, "GET /health HTTP/1.1\r\nHost: gw\r\nX-Pad: "+strings.Repeat("p", pad)+"\r\n\r\n"))
		resp, _ := answer(t, r)
		return resp.StatusCode
	}
	if code := get(12000); code != http.StatusRequestHeaderFieldsTooLarge {
		t.Errorf("12 KB header: %d, want 431", code)
	}
	if code := get(9 << 10); code != http.StatusOK {
		t.Errorf("9 KiB header: %d, want 200", code)
	}
}

// Go's own server accepts a request with both Content-Length and Transfer-Encoding (Transfer-Encoding wins
// and Content-Length is dropped); gateway-local refuses it with 400, also when it is the second request of
// a pipelined pair, and still takes a chunked body without Content-Length.
func TestContentLengthWithTransferEncoding(t *testing.T) {
	t.Parallel()
	both := "POST /scrape HTTP/1.1\r\nHost: gw\r\nAuthorization: Bearer %s\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n" +
		"16\r\n{\"script_name\":\"../x\"}\r\n0\r\n\r\n"

	// The proof that the rule is ours: a plain Go server answers such a request.
	plain := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		fmt.Fprintf(w, "cl=%d te=%v body=%s", r.ContentLength, r.TransferEncoding, b)
	})}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go func() { _ = plain.Serve(ln) }()
	t.Cleanup(func() { _ = plain.Close() })
	c, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	fmt.Fprintf(c, both, "x")
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		t.Fatal(err)
	}
	got, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 {
		t.Fatalf("Go's server now refuses it itself (%d %s): the guard may go", resp.StatusCode, got)
	}
	t.Logf("plain net/http server: %d %s", resp.StatusCode, got)

	s := serve(t, nil, 0)
	check := func(name, raw string, want ...int) {
		r := bufio.NewReader(s.dial(t, raw))
		for i, status := range want {
			resp, m := answer(t, r)
			if resp.StatusCode != status {
				t.Errorf("%s: answer %d is %d %v, want %d", name, i, resp.StatusCode, m, status)
			}
			if status == http.StatusBadRequest && (m["error_code"] != "invalid_request" || !strings.Contains(fmt.Sprint(m["error"]), "both Content-Length and Transfer-Encoding")) {
				t.Errorf("%s: %v", name, m)
			}
		}
	}
	conflict := fmt.Sprintf(both, s.token)
	check("both headers", conflict, http.StatusBadRequest)
	check("both headers, TE first and odd case", strings.Replace(strings.Replace(conflict, "Content-Length: 4\r\n", "", 1),
		"Transfer-Encoding: chunked\r\n", "transfer-encoding: chunked\r\ncontent-length: 4\r\n", 1), http.StatusBadRequest)
	body := `{"script_name":"../x"}`
	check("pipelined after a good request", scrapeHead(s.token, len(body))+body+conflict, http.StatusUnprocessableEntity, http.StatusBadRequest)
	chunked := strings.Replace(conflict, "Content-Length: 4\r\n", "", 1)
	check("chunked alone, twice", chunked+chunked, http.StatusUnprocessableEntity, http.StatusUnprocessableEntity)
}

// Past GATEWAY_MAX_CONNECTIONS a new connection is answered 503 server_busy and closed at once; a slot
// freed is a connection served again.
func TestConnectionCap(t *testing.T) {
	t.Parallel()
	s := serve(t, nil, 5)
	held := make([]net.Conn, 5)
	for i := range held {
		held[i] = s.dial(t, "")
	}
	for len(s.ln.slots) < 5 {
		time.Sleep(5 * time.Millisecond)
	}
	c := s.dial(t, "")
	r := bufio.NewReader(c)
	resp, m := answer(t, r)
	if resp.StatusCode != http.StatusServiceUnavailable || m["error_code"] != "server_busy" || resp.Header.Get("Retry-After") == "" {
		t.Fatalf("over the cap: %d %v", resp.StatusCode, m)
	}
	if !closedAfter(c, r) {
		t.Fatal("the refused connection stayed open")
	}
	_ = held[0].Close()
	for len(s.ln.slots) >= 5 {
		time.Sleep(5 * time.Millisecond)
	}
	if code, m := s.health(t); code != http.StatusOK {
		t.Fatalf("/health after a slot was freed: %d %v", code, m)
	}
	if s.ln.refused.Load() != 1 {
		t.Errorf("refused %d connections, want 1", s.ln.refused.Load())
	}
}

// The server's timeouts leave room for the longest scrape: a ReadTimeout shorter than a request's life
// would cancel its context mid-scrape.
func TestServerTimeoutsFitTheBudget(t *testing.T) {
	t.Parallel()
	cfg, err := localedge.LoadConfig(func(k string) string { return map[string]string{"JWT_SECRET": testSecret}[k] })
	if err != nil {
		t.Fatal(err)
	}
	srv := newServer(cfg, http.NotFoundHandler())
	// The handler waits through the sync window (a job goes on without it) or a job's long poll, and may
	// give a job's task publishAllowance to be confirmed.
	longest := cfg.BodyTimeout + max(cfg.Gateway.SyncWait, gateway.MaxJobWait) + cfg.Gateway.ReplyGrace + publishAllowance
	if srv.ReadTimeout <= longest || srv.WriteTimeout <= longest || srv.ReadHeaderTimeout == 0 || srv.IdleTimeout == 0 {
		t.Fatalf("timeouts %+v do not cover a request's %v", srv, longest)
	}
	if srv.MaxHeaderBytes+headerSlop != 10<<10 {
		t.Fatalf("MaxHeaderBytes %d", srv.MaxHeaderBytes)
	}
}
