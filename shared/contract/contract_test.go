package contract

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"
)

func validRequest(now time.Time) Request {
	return Request{
		Version: Version, RequestID: "req-1", ScriptName: "example_scraper",
		Parameters: json.RawMessage(`{"url":"http://x"}`), Budget: Budget{Timeout: 5, Deadline: now.Add(7 * time.Second)},
	}
}

func TestValidateScriptName(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name string
		ok   bool
	}{
		{"example_scraper", true},
		{"a", true},
		{"9lives-v2", true},
		{"", false},
		{"../etc/passwd", false},
		{"/abs", false},
		{".hidden", false},
		{"-dash", false},
		{"_under", false},
		{"Upper", false},
		{"has space", false},
		{"a/b", false},
		{"a\x00b", false},
		{"ünï", false},
		{strings.Repeat("a", MaxScriptNameLength), true},
		{strings.Repeat("a", MaxScriptNameLength+1), false},
	} {
		err := ValidateScriptName(tc.name)
		if (err == nil) != tc.ok {
			t.Errorf("ValidateScriptName(%q) = %v, want ok=%v", tc.name, err, tc.ok)
		}
	}
}

func TestRequestValidateReportsEveryProblem(t *testing.T) {
	t.Parallel()
	r := Request{Version: 9, ScriptName: "../x", Parameters: json.RawMessage(`[1]`), Budget: Budget{Timeout: Seconds(math.NaN())}}
	err := r.Validate()
	if err == nil {
		t.Fatal("want errors")
	}
	for _, want := range []string{"version 9", "request_id", "script_name", "parameters must be a JSON object", "timeout", "deadline"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not mention %q", err, want)
		}
	}
}

func TestParametersValidation(t *testing.T) {
	t.Parallel()
	for raw, ok := range map[string]bool{``: true, `null`: true, `{}`: true, ` {"a":1} `: true, `[]`: false, `"s"`: false, `{`: false, `1`: false} {
		if err := ValidateParameters(json.RawMessage(raw)); (err == nil) != ok {
			t.Errorf("ValidateParameters(%q) = %v, want ok=%v", raw, err, ok)
		}
	}
}

func TestPublishingMapsEveryProperty(t *testing.T) {
	t.Parallel()
	now := time.Date(2026, 11, 28, 12, 0, 0, 500_000_000, time.UTC)
	req := validRequest(now)
	p, err := req.Publishing(now)
	if err != nil {
		t.Fatal(err)
	}
	if p.CorrelationId != req.RequestID || p.MessageId != req.RequestID {
		t.Errorf("ids: correlation %q message %q", p.CorrelationId, p.MessageId)
	}
	if p.ReplyTo != DirectReplyTo || p.ContentType != ContentType || p.Type != RequestType || p.DeliveryMode != amqp.Persistent {
		t.Errorf("properties: %+v", p)
	}
	if p.Expiration != "7000" {
		t.Errorf("expiration = %q, want 7000 (ms to the deadline)", p.Expiration)
	}
	if !p.Timestamp.Equal(now.Truncate(time.Second)) {
		t.Errorf("timestamp = %v", p.Timestamp)
	}
	// Round trip through a delivery.
	got, err := ParseRequest(amqp.Delivery{Body: p.Body, CorrelationId: p.CorrelationId, Type: p.Type})
	if err != nil {
		t.Fatal(err)
	}
	if got.ScriptName != req.ScriptName || string(got.Parameters) != string(req.Parameters) || !got.Deadline.Equal(req.Deadline) {
		t.Errorf("round trip changed the request: %+v", got)
	}
}

func TestPublishingExpirationRoundsUpAndRefusesExpired(t *testing.T) {
	t.Parallel()
	now := time.Now()
	req := validRequest(now)
	req.Deadline = now.Add(1500 * time.Microsecond)
	p, err := req.Publishing(now)
	if err != nil {
		t.Fatal(err)
	}
	if ms, _ := strconv.Atoi(p.Expiration); ms != 2 {
		t.Errorf("expiration %q, want 2 (rounded up)", p.Expiration)
	}
	req.Deadline = now.Add(-time.Millisecond)
	if _, err := req.Publishing(now); !errors.Is(err, ErrExpired) {
		t.Errorf("expired request: got %v", err)
	}
}

func TestParseRequestRejectsMismatchedProperties(t *testing.T) {
	t.Parallel()
	req := validRequest(time.Now())
	body, _ := json.Marshal(req)
	if _, err := ParseRequest(amqp.Delivery{Body: body, CorrelationId: "other"}); err == nil {
		t.Error("mismatched correlation id accepted")
	}
	if _, err := ParseRequest(amqp.Delivery{Body: body, CorrelationId: req.RequestID, Type: "something.else"}); err == nil {
		t.Error("wrong type accepted")
	}
}

func TestReplyRoundTripAndValidation(t *testing.T) {
	t.Parallel()
	req := validRequest(time.Now())
	rep := Failed(&req, CodeScriptTimeout, "too slow")
	if rep.Status != StatusTimeout {
		t.Errorf("timeout code gives status %q", rep.Status)
	}
	p, err := rep.Publishing(time.Now())
	if err != nil {
		t.Fatal(err)
	}
	got, err := ParseReply(amqp.Delivery{Body: p.Body, CorrelationId: p.CorrelationId})
	if err != nil {
		t.Fatal(err)
	}
	if got.Error.Code != CodeScriptTimeout || got.Error.Message != "too slow" {
		t.Errorf("round trip: %+v", got.Error)
	}
	bad := Reply{Version: Version, RequestID: "x", Status: StatusFailed}
	if bad.Validate() == nil {
		t.Error("failed reply without an error accepted")
	}
}

func TestClassify(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		err  error
		want Class
	}{
		{errors.New("x"), Permanent},
		{Transiently(errors.New("x")), Transient},
		{fmt.Errorf("wrapped: %w", Transiently(errors.New("x"))), Transient},
		{context.Canceled, Cancelled},
		{fmt.Errorf("run: %w", context.DeadlineExceeded), Cancelled},
		{ErrExpired, Cancelled},
	} {
		if got := Classify(tc.err); got != tc.want {
			t.Errorf("Classify(%v) = %v, want %v", tc.err, got, tc.want)
		}
	}
	if Transiently(nil) != nil {
		t.Error("Transiently(nil) != nil")
	}
}

// FuzzParseRequest feeds untrusted message bodies to the worker's parser: it must never panic, and whatever
// it accepts must be valid and publishable again.
func FuzzParseRequest(f *testing.F) {
	good, _ := json.Marshal(validRequest(time.Now()))
	f.Add(good, "req-1")
	f.Add([]byte(`{"version":1,"request_id":"a","script_name":"../../x","timeout":1e308}`), "a")
	f.Add([]byte(`{"parameters":[1,2]}`), "")
	f.Add([]byte(`null`), "")
	f.Fuzz(func(t *testing.T, body []byte, corr string) {
		req, err := ParseRequest(amqp.Delivery{Body: body, CorrelationId: corr})
		if err != nil {
			return
		}
		if verr := req.Validate(); verr != nil {
			t.Fatalf("accepted an invalid request: %v", verr)
		}
		if ValidateScriptName(req.ScriptName) != nil {
			t.Fatalf("accepted script name %q", req.ScriptName)
		}
	})
}

// FuzzParseReply: the gateway parses replies from the broker; it must never panic and must only accept
// replies that validate.
func FuzzParseReply(f *testing.F) {
	rep, _ := json.Marshal(Reply{Version: Version, RequestID: "r", Status: StatusCompleted, Data: json.RawMessage(`{"a":1}`)})
	f.Add(rep, "r")
	f.Add([]byte(`{"version":1,"request_id":"r","status":"failed"}`), "r")
	f.Fuzz(func(t *testing.T, body []byte, corr string) {
		got, err := ParseReply(amqp.Delivery{Body: body, CorrelationId: corr})
		if err != nil {
			return
		}
		if got.Validate() != nil || got.RequestID != corr {
			t.Fatalf("accepted an invalid reply: %+v", got)
		}
	})
}

func TestValidateParametersBounds(t *testing.T) {
	t.Parallel()
	nest := func(n int) string { return `{"a":` + strings.Repeat("[", n-1) + strings.Repeat("]", n-1) + `}` }
	for raw, ok := range map[string]bool{
		nest(MaxParameterDepth):     true,
		nest(MaxParameterDepth + 1): false,
		`{"a":"[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[["}`: true, // brackets in a string do not nest
		`{"a":"\"[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[\\"}`:  true,
		"{\"a\":\"\xff\"}": false, // invalid UTF-8
		`{"a":"\ud800"}`:   true,  // an escaped lone surrogate is valid JSON and ASCII
		`{"a":"ü"}`:        true,
	} {
		if err := ValidateParameters(json.RawMessage(raw)); (err == nil) != ok {
			t.Errorf("ValidateParameters(%.40q…) = %v, want ok=%v", raw, err, ok)
		}
	}
}

// Duplicate keys (at any depth, compared after unescaping) and numbers another side would read differently
// are refused, each with an error that locates them.
func TestValidateParametersStrict(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		raw     string
		mention string // "" means accepted
	}{
		{`{"a":1,"a":2}`, `duplicate key "a" in parameters`},
		{`{"a":1,"\u0061":2}`, `duplicate key "a"`},
		{`{"a":{"b":[{"c":1,"c":1}]}}`, `parameters.a.b[0]`},
		{`{"a":1,"A":2,"ſ":3,"s":4}`, ""}, // distinct keys: Python and Go maps keep them apart
		{`{"n":9007199254740992}`, ""},
		{`{"n":-9007199254740992}`, ""},
		{`{"n":9007199254740993}`, "parameters.n: integer 9007199254740993 is beyond ±2^53"},
		{`{"n":[1,-12345678901234567890]}`, "parameters.n[1]: integer"},
		{`{"n":` + strings.Repeat("9", 5000) + `}`, "send it as a string"},
		{`{"weird key":1e400}`, `parameters["weird key"]: number 1e400 is out of range`},
		{`{"n":1e300,"m":1.5,"k":1e-400,"big":1e20}`, ""}, // floats within range, exponents are floats
	} {
		err := ValidateParameters(json.RawMessage(tc.raw))
		if tc.mention == "" {
			if err != nil {
				t.Errorf("ValidateParameters(%.60s) = %v, want ok", tc.raw, err)
			}
			continue
		}
		if err == nil || !strings.Contains(err.Error(), tc.mention) {
			t.Errorf("ValidateParameters(%.60s) = %v, want an error mentioning %q", tc.raw, err, tc.mention)
		}
	}
	var dk *DuplicateKeyError
	if err := CheckDuplicateKeys([]byte(`{"script_name":"a","parameters":{},"script_name":"b"}`), "the request body"); !errors.As(err, &dk) || dk.Key != "script_name" || dk.Path != "the request body" {
		t.Errorf("CheckDuplicateKeys: %v", err)
	}
	if err := CheckDuplicateKeys([]byte(`[{"a":1},{"a":1}]`), "body"); err != nil {
		t.Errorf("keys of different objects are not duplicates: %v", err)
	}
}

// A timeout is a whole number of milliseconds: finer ones are refused with the rule in the message.
func TestValidateTimeoutResolution(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		t       float64
		mention string
	}{
		{25, ""}, {0.1, ""}, {1.001, ""}, {2.3, ""}, {24.999, ""},
		{25.0000000001, "between 0.1 and 25 seconds, got 25.0000000001"}, // was accepted: the Duration truncated it
		{24.0000000001, "whole number of milliseconds (at most 3 decimal places), got 24.0000000001"},
		{1.0005, "whole number of milliseconds"},
		{25.001, "between 0.1 and 25 seconds"},
		{0.0999, "between"},
	} {
		err := ValidateTimeout(Seconds(tc.t), 25*time.Second)
		if (err == nil) != (tc.mention == "") || err != nil && !strings.Contains(err.Error(), tc.mention) {
			t.Errorf("ValidateTimeout(%v) = %v, want %q", tc.t, err, tc.mention)
		}
	}
	// What the gateway puts on the wire (a budget built from the timeout) passes the worker's check again.
	for _, s := range []float64{2.3, 0.1, 1.001, 899.999, 24.7} {
		b := NewBudget(time.Now(), Seconds(s).Duration(), time.Second, time.Time{})
		if err := ValidateTimeout(b.Timeout, MaxTimeout); err != nil || b.Timeout != Seconds(s) {
			t.Errorf("timeout %v became %v: %v", s, b.Timeout, err)
		}
	}
}
