package main

import (
	"context"
	"io"
	"log/slog"
	"net"
	"net/http"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// A client that sends half a request and then stalls is cut at ReadHeaderTimeout, while /healthz keeps
// answering other clients meanwhile; the connection cap leaves room for them.
func TestStatusServerCutsStalledRequests(t *testing.T) {
	t.Parallel()
	srv, err := serveStatus("127.0.0.1:0", prometheus.NewRegistry(), func() bool { return true },
		statusLimits{ReadHeaderTimeout: 200 * time.Millisecond, ReadTimeout: 200 * time.Millisecond, MaxConns: 4},
		slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = srv.Shutdown(context.Background()) })

	stalled, err := net.Dial("tcp", srv.Addr)
	if err != nil {
		t.Fatal(err)
	}
	defer stalled.Close()
	if _, err := io.WriteString(stalled, "GET /healthz HTTP/1.1\r\nHost: x\r\nX-Slow: "); err != nil {
		t.Fatal(err)
	}

	res, err := http.Get("http://" + srv.Addr + "/healthz")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(res.Body)
	res.Body.Close()
	if res.StatusCode != http.StatusOK {
		t.Fatalf("/healthz while a request stalls: %d %s", res.StatusCode, body)
	}

	// The server closes the stalled connection (possibly after a 408 response): the read ends with EOF,
	// not with the test's own deadline.
	_ = stalled.SetReadDeadline(time.Now().Add(time.Minute))
	if _, err := io.ReadAll(stalled); err != nil {
		t.Fatalf("stalled connection was not cut by the server: %v", err)
	}
}

// Past MaxConns, further connections wait to be accepted until one closes.
func TestStatusServerCapsConnections(t *testing.T) {
	t.Parallel()
	srv, err := serveStatus("127.0.0.1:0", prometheus.NewRegistry(), func() bool { return true },
		statusLimits{MaxConns: 1}, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = srv.Shutdown(context.Background()) })
	holder, err := net.Dial("tcp", srv.Addr)
	if err != nil {
		t.Fatal(err)
	}
	// Make sure the server accepted holder (it answers a complete request on it).
	if _, err := io.WriteString(holder, "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n"); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 12)
	if _, err := io.ReadFull(holder, buf); err != nil || string(buf) != "HTTP/1.1 200" {
		t.Fatalf("holder: %q %v", buf, err)
	}
	answered := make(chan int, 1)
	go func() {
		res, err := (&http.Client{Transport: &http.Transport{DisableKeepAlives: true}}).Get("http://" + srv.Addr + "/healthz")
		if err != nil {
			answered <- 0
			return
		}
		res.Body.Close()
		answered <- res.StatusCode
	}()
	select {
	case code := <-answered:
		t.Fatalf("a second connection was served while the cap was taken: %d", code)
	case <-time.After(200 * time.Millisecond):
	}
	holder.Close()
	if code := <-answered; code != http.StatusOK {
		t.Fatalf("after the slot freed: %d", code)
	}
}
