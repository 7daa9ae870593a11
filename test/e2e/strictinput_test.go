package e2e

import (
	"bufio"
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"testing"
	"time"
)

// rawHS256 signs claims, a JSON text kept byte for byte, with the stack's secret: the way to send the
// verifier duplicate or case-folded members that a JSON encoder would never write.
func rawHS256(claims string) string {
	enc := base64.RawURLEncoding
	in := enc.EncodeToString([]byte(`{"alg":"HS256","typ":"JWT"}`)) + "." + enc.EncodeToString([]byte(claims))
	m := hmac.New(sha256.New, []byte(secret))
	m.Write([]byte(in))
	return in + "." + enc.EncodeToString(m.Sum(nil))
}

// rawExchange writes raw to the gateway over a fresh TCP connection and reads one answer, which is checked
// against openapi.json like every other answer of the suite (reqBody is what the document validates as the
// request body).
func (e *env) rawExchange(t *testing.T, raw, reqBody string) (int, string, *http.Response) {
	t.Helper()
	u, err := url.Parse(e.url)
	if err != nil {
		t.Fatal(err)
	}
	c, err := net.Dial("tcp", u.Host)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(time.Minute)) // a guard against a hang, not a speed check
	if _, err := io.WriteString(c, raw); err != nil {
		t.Fatal(err)
	}
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		t.Fatalf("read answer: %v", err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	checkAgainstSpec(t, "POST", e.url+"/scrape", []byte(reqBody), resp.Header, resp.StatusCode, body)
	return resp.StatusCode, string(body), resp
}

// TestStrictTransport: over raw TCP, a body that stalls is answered 408 once GATEWAY_BODY_TIMEOUT passes,
// and a request with both Content-Length and Transfer-Encoding is refused with 400.
func TestStrictTransport(t *testing.T) {
	e := start(t, 1, "GATEWAY_BODY_TIMEOUT=1s")
	head := func(extra string, n int) string {
		return fmt.Sprintf("POST /scrape HTTP/1.1\r\nHost: gw\r\nAuthorization: Bearer %s\r\nContent-Type: application/json\r\n%sContent-Length: %d\r\n\r\n",
			e.token, extra, n)
	}
	body := `{"script_name":"echo"}`

	code, raw, resp := e.rawExchange(t, head("", len(body)+10)+body[:10], body)
	if code != http.StatusRequestTimeout || !bytes.Contains([]byte(raw), []byte(`"request_timeout"`)) || !resp.Close {
		t.Errorf("stalled body: %d %s close=%v", code, raw, resp.Close)
	}

	chunked := fmt.Sprintf("%x\r\n%s\r\n0\r\n\r\n", len(body), body)
	code, raw, _ = e.rawExchange(t, head("Transfer-Encoding: chunked\r\n", 4)+chunked, body)
	if code != http.StatusBadRequest || !bytes.Contains([]byte(raw), []byte("both Content-Length and Transfer-Encoding")) {
		t.Errorf("Content-Length with Transfer-Encoding: %d %s", code, raw)
	}

	// The 12 KB header: refused by the server itself (431, plain text, so not checked against the document).
	c, err := net.Dial("tcp", e.url[len("http://"):])
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	fmt.Fprintf(c, "GET /health HTTP/1.1\r\nHost: gw\r\nX-Pad: %s\r\n\r\n", bytes.Repeat([]byte("p"), 12000))
	r, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil || r.StatusCode != http.StatusRequestHeaderFieldsTooLarge {
		t.Errorf("12 KB header: %v %v", r, err)
	}
}
