package faults

import (
	"crypto/hmac"
	"crypto/sha256"
	"crypto/sha512"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"hash"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/scrapeplatform/platform/shared/brokertest"
)

const (
	issuer   = "faults-issuer"
	audience = "faults-api"
)

// signed builds a JWT with the given header and claims, signed with key by mac (nil: no signature).
func signed(header, claims map[string]any, mac func() hash.Hash, key []byte) string {
	enc := func(v any) string {
		b, _ := json.Marshal(v)
		return base64.RawURLEncoding.EncodeToString(b)
	}
	input := enc(header) + "." + enc(claims)
	if mac == nil {
		return input + "."
	}
	m := hmac.New(mac, key)
	m.Write([]byte(input))
	return input + "." + base64.RawURLEncoding.EncodeToString(m.Sum(nil))
}

func goodClaims() map[string]any {
	now := time.Now().Unix()
	return map[string]any{"sub": "faults", "iss": issuer, "aud": audience, "iat": now, "exp": now + 3600}
}

func with(claims map[string]any, k string, v any) map[string]any {
	c := map[string]any{}
	for key, val := range claims {
		c[key] = val
	}
	if v == nil {
		delete(c, k)
	} else {
		c[k] = v
	}
	return c
}

// TestHostileCallers sends what a careless or hostile client might: malformed, deeply nested and oversized
// JSON, wrong types, unknown fields, script names that try to escape, timeouts out of range, and every
// flavour of bad token. Each gets a 4xx with a clear JSON error, no error reveals the secret, and nothing
// reaches the task queue (a consumer on it, standing in for the workers, receives nothing).
func TestHostileCallers(t *testing.T) {
	t.Parallel()
	e := start(t, options{workers: 0, gatewayEnv: []string{"JWT_ISSUER=" + issuer, "JWT_AUDIENCE=" + audience}})
	_, ch := brokertest.Channel(t, e.amqpURL)
	if err := e.topo.Declare(ch); err != nil {
		t.Fatal(err)
	}
	tasks, err := ch.Consume(e.queue, "", true, false, false, false, nil)
	if err != nil {
		t.Fatal(err)
	}
	var queued atomic.Int64
	go func() {
		for d := range tasks {
			queued.Add(1)
			t.Errorf("a request reached the task queue: %.200s", d.Body)
		}
	}()
	good := signed(map[string]any{"alg": "HS256", "typ": "JWT"}, goodClaims(), sha256.New, []byte(secret))
	if r := e.do("GET", "/status", "", good); r.code != 200 {
		t.Fatalf("a good token is refused: %d %s", r.code, r.raw)
	}

	nest := func(depth int) string {
		return `{"script_name":"echo","timeout":0.5,"parameters":{"a":` + strings.Repeat("[", depth) + strings.Repeat("]", depth) + `}}`
	}
	bodies := []struct {
		name, body string
		code       int
	}{
		{"empty body", ``, 400},
		{"truncated JSON", `{"script_name":`, 400},
		{"not an object", `["echo"]`, 400},
		{"a bare string", `"echo"`, 400},
		{"two documents", `{"script_name":"echo","timeout":0.5} {"script_name":"echo"}`, 400},
		{"unknown field", `{"script_name":"echo","timeout":0.5,"priority":"high"}`, 400},
		{"script_name a number", `{"script_name":42,"timeout":0.5}`, 400},
		{"parameters an array", `{"script_name":"echo","timeout":0.5,"parameters":[1,2]}`, 422},
		{"parameters a string", `{"script_name":"echo","timeout":0.5,"parameters":"x=1"}`, 422},
		{"parameters with invalid UTF-8", "{\"script_name\":\"echo\",\"timeout\":0.5,\"parameters\":{\"a\":\"\xff\xfe\"}}", 422},
		{"parameters nested 100 deep", nest(100), 422},
		{"parameters nested 5,000 deep", nest(5000), 422},
		{"parameters nested 100,000 deep", nest(100000), 400},
		{"timeout a string", `{"script_name":"echo","timeout":"5"}`, 422},
		{"timeout 0", `{"script_name":"echo","timeout":0}`, 422},
		{"timeout negative", `{"script_name":"echo","timeout":-1}`, 422},
		{"timeout too small", `{"script_name":"echo","timeout":0.01}`, 422},
		{"timeout above the maximum (SCRAPE_MAX_TIMEOUT, 900 s)", `{"script_name":"echo","timeout":900.5}`, 422},
		{"timeout 1e309", `{"script_name":"echo","timeout":1e309}`, 422},
		{"no script_name", `{"timeout":0.5}`, 422},
		{"script_name empty", `{"script_name":"","timeout":0.5}`, 422},
		{"script_name ../../etc/passwd", `{"script_name":"../../etc/passwd","timeout":0.5}`, 422},
		{"script_name /etc/passwd", `{"script_name":"/etc/passwd","timeout":0.5}`, 422},
		{"script_name echo/../echo", `{"script_name":"echo/../echo","timeout":0.5}`, 422},
		{"script_name %2e%2e", `{"script_name":"%2e%2e","timeout":0.5}`, 422},
		{"script_name upper case", `{"script_name":"Echo","timeout":0.5}`, 422},
		{"script_name fullwidth letters", `{"script_name":"ｅｃｈｏ","timeout":0.5}`, 422},
		{"script_name Cyrillic o", `{"script_name":"ech\u043e","timeout":0.5}`, 422},
		{"script_name zero-width space", `{"script_name":"echo\u200b","timeout":0.5}`, 422},
		{"script_name NUL", `{"script_name":"echo\u0000","timeout":0.5}`, 422},
		{"script_name 65 characters", `{"script_name":"` + strings.Repeat("e", 65) + `","timeout":0.5}`, 422},
		{"body over the limit (300 KiB)", `{"script_name":"echo","timeout":0.5,"parameters":{"x":"` + strings.Repeat("x", 300<<10) + `"}}`, 413},
	}
	worst, clear := time.Duration(0), 0
	for _, b := range bodies {
		r := e.do("POST", "/scrape", b.body, good)
		worst = max(worst, r.latency)
		msg, _ := r.body["error"].(string)
		if r.err != nil || r.code != b.code || msg == "" || r.errorCode() == "" {
			t.Errorf("%s: got %d %.300s %v; want %d with a JSON error", b.name, r.code, r.raw, r.err, b.code)
			continue
		}
		clear++
		t.Logf("%s: %d %s", b.name, r.code, firstLine(msg, 150))
	}
	report(t, fmt.Sprintf("hostile bodies (%d kinds: malformed, nested 100/5,000/100,000 deep, invalid UTF-8, wrong types, unknown fields, traversal/absolute/unicode names, timeouts out of range, 300 KiB)", len(bodies)),
		"4xx with a clear JSON error; nothing queued", fmt.Sprintf("%d/%d answered as expected (400/413/422 with error and error_code)", clear, len(bodies)), fmt.Sprintf("slowest answer %s", ms(worst)))

	hs := func(alg string, mac func() hash.Hash, claims map[string]any) string {
		return signed(map[string]any{"alg": alg, "typ": "JWT"}, claims, mac, []byte(secret))
	}
	now := time.Now().Unix()
	tokens := []struct{ name, header string }{
		{"no Authorization header", ""},
		{"empty bearer", "Bearer "},
		{"Basic credentials", "Basic ZmF1bHRzOmZhdWx0cw=="},
		{"not a JWT", "Bearer not-a-jwt"},
		{"three garbage segments", "Bearer a.b.c"},
		{"bad signature", "Bearer " + signed(map[string]any{"alg": "HS256"}, goodClaims(), sha256.New, []byte("some-other-secret-some-other-secret"))},
		{"signature stripped", "Bearer " + strings.TrimRight(good[:strings.LastIndexByte(good, '.')+1], "")},
		{"alg none", "Bearer " + signed(map[string]any{"alg": "none", "typ": "JWT"}, goodClaims(), nil, nil)},
		{"alg None", "Bearer " + signed(map[string]any{"alg": "None"}, goodClaims(), nil, nil)},
		{"alg RS256 signed with the secret as an HMAC key (HS/RS confusion)", "Bearer " + hs("RS256", sha256.New, goodClaims())},
		{"alg HS512", "Bearer " + hs("HS512", sha512.New, goodClaims())},
		{"expired", "Bearer " + hs("HS256", sha256.New, with(goodClaims(), "exp", now-300))},
		{"not yet valid", "Bearer " + hs("HS256", sha256.New, with(goodClaims(), "nbf", now+300))},
		{"issued in the future", "Bearer " + hs("HS256", sha256.New, with(goodClaims(), "iat", now+300))},
		{"wrong issuer", "Bearer " + hs("HS256", sha256.New, with(goodClaims(), "iss", "someone-else"))},
		{"no issuer", "Bearer " + hs("HS256", sha256.New, with(goodClaims(), "iss", nil))},
		{"wrong audience", "Bearer " + hs("HS256", sha256.New, with(goodClaims(), "aud", "another-api"))},
		{"no expiry", "Bearer " + hs("HS256", sha256.New, with(goodClaims(), "exp", nil))},
		{"no subject", "Bearer " + hs("HS256", sha256.New, with(goodClaims(), "sub", nil))},
		{"critical header", "Bearer " + signed(map[string]any{"alg": "HS256", "crit": []string{"exp"}}, goodClaims(), sha256.New, []byte(secret))},
	}
	body := `{"script_name":"echo","timeout":0.5}`
	refused := 0
	for _, tok := range tokens {
		var r result
		if tok.header == "" {
			r = e.do("POST", "/scrape", body, "")
		} else {
			r = e.do("POST", "/scrape", body, "", "Authorization", tok.header)
		}
		msg, _ := r.body["error"].(string)
		if r.err != nil || r.code != 401 || r.errorCode() != "unauthorized" || r.header.Get("WWW-Authenticate") == "" {
			t.Errorf("%s: got %d %s %v; want 401 unauthorized", tok.name, r.code, r.raw, r.err)
			continue
		}
		lower := strings.ToLower(r.raw)
		for _, leak := range []string{strings.ToLower(secret), "hmac", "crypto/", "signature is invalid", "sha256", "key"} {
			if strings.Contains(lower, leak) {
				t.Errorf("%s: the error reveals %q: %s", tok.name, leak, r.raw)
			}
		}
		refused++
		t.Logf("%s: 401 %s", tok.name, msg)
	}
	report(t, fmt.Sprintf("bad credentials (%d kinds: missing, malformed, bad/stripped signature, alg none, HS/RS confusion, HS512, expired, nbf/iat in the future, wrong/no issuer, wrong audience, no exp/sub, crit)", len(tokens)),
		"401; error reveals neither the secret nor signature details",
		fmt.Sprintf("%d/%d: 401 unauthorized with WWW-Authenticate; messages name the rule only (e.g. \"invalid token: bad signature\")", refused, len(tokens)), "")

	time.Sleep(500 * time.Millisecond) // anything published would have reached the consumer by now
	if n := queued.Load(); n != 0 {
		t.Fatalf("%d requests were queued", n)
	}
}
