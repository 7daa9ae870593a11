package webhook

import (
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"
)

// The reference vector of the Standard Webhooks Go library (standard-webhooks/standard-webhooks,
// libraries/go/webhook_test.go, TestWebhookSign); the other reference libraries test the same one.
const (
	vectorSecret    = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
	vectorID        = "msg_p5jXN8AQM9LWM0D4loKWxJek"
	vectorTimestamp = 1614265330
	vectorBody      = `{"test": 2432232314}`
	vectorSignature = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="
)

func mustSecret(t testing.TB, s string) Secret {
	t.Helper()
	sec, err := ParseSecret(s)
	if err != nil {
		t.Fatal(err)
	}
	return sec
}

func TestSignReferenceVector(t *testing.T) {
	sec := mustSecret(t, vectorSecret)
	h, err := Sign(sec, vectorID, time.Unix(vectorTimestamp, 0), []byte(vectorBody))
	if err != nil {
		t.Fatal(err)
	}
	if got := h.Get(HeaderSignature); got != vectorSignature {
		t.Errorf("signature %q, want the spec's %q", got, vectorSignature)
	}
	if got := h.Get(HeaderTimestamp); got != strconv.Itoa(vectorTimestamp) {
		t.Errorf("timestamp %q", got)
	}
	if got := h.Get(HeaderID); got != vectorID {
		t.Errorf("id %q", got)
	}
	// The receiver's side of the same vector.
	if err := Verify([]Secret{sec}, h, []byte(vectorBody), time.Unix(vectorTimestamp+60, 0)); err != nil {
		t.Errorf("Verify(reference vector): %v", err)
	}
}

func TestSecret(t *testing.T) {
	s, err := NewSecret()
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(s.Encode(), SecretPrefix) {
		t.Fatalf("secret %q lacks the whsec_ prefix", s)
	}
	back, err := ParseSecret(s.Encode())
	if err != nil {
		t.Fatalf("ParseSecret(NewSecret()): %v", err)
	}
	if back.Encode() != s.Encode() {
		t.Errorf("round trip changed the secret")
	}
	if printed := fmt.Sprintf("%v %+v %#v %s", s, s, s, []Secret{s}); strings.Contains(printed, strings.TrimPrefix(s.Encode(), SecretPrefix)) {
		t.Errorf("printing a Secret shows its key: %s", printed)
	}
	other, _ := NewSecret()
	if other.Encode() == s.Encode() {
		t.Errorf("two generated secrets are equal")
	}
	// Without the prefix, as the reference libraries accept.
	if _, err := ParseSecret(strings.TrimPrefix(vectorSecret, SecretPrefix)); err != nil {
		t.Errorf("secret without prefix: %v", err)
	}
	for _, bad := range []string{"", "whsec_", "whsec_!!!", "whsec_c2hvcnQ=" /* "short": 5 bytes */, SecretPrefix + strings.Repeat("QUFB", 22) /* 66 bytes */} {
		if _, err := ParseSecret(bad); err == nil {
			t.Errorf("ParseSecret(%q) accepted", bad)
		}
	}
	if _, err := Sign(Secret{}, "msg_1", time.Now(), nil); err == nil {
		t.Error("Sign with the zero Secret succeeded")
	}
}

func TestVerify(t *testing.T) {
	now := time.Unix(1_800_000_000, 0)
	body := []byte(`{"request_id":"r1","status":"completed"}`)
	current, old, stranger := mustSecret(t, vectorSecret), newSecret(t), newSecret(t)
	signed := func(ts time.Time, secrets ...Secret) http.Header {
		h, err := Sign(secrets[0], "msg_1", ts, body, secrets[1:]...)
		if err != nil {
			t.Fatal(err)
		}
		return h
	}
	with := func(h http.Header, name, value string) http.Header {
		h = h.Clone()
		if value == "" {
			h.Del(name)
		} else {
			h.Set(name, value)
		}
		return h
	}
	good := signed(now, current)
	forged := "v1,Ceo5qEr07ixe2NLpvHk3FH9bwy/WavXrAFQ/9tdO6mc="
	tests := []struct {
		name    string
		secrets []Secret
		headers http.Header
		body    []byte
		want    error
	}{
		{"valid", []Secret{current}, good, body, nil},
		{"rotation: receiver has the new key", []Secret{current}, signed(now, current, old), body, nil},
		{"rotation: receiver still has the old key", []Secret{old}, signed(now, current, old), body, nil},
		{"receiver holds several keys", []Secret{stranger, current}, good, body, nil},
		{"4m59s old", []Secret{current}, signed(now.Add(-Tolerance+time.Second), current), body, nil},
		{"exactly 5 min old", []Secret{current}, signed(now.Add(-Tolerance), current), body, nil},
		{"5 min 1 s old", []Secret{current}, signed(now.Add(-Tolerance-time.Second), current), body, ErrTimestamp},
		{"5 min 1 s ahead", []Secret{current}, signed(now.Add(Tolerance+time.Second), current), body, ErrTimestamp},
		{"other body", []Secret{current}, good, []byte(`{"request_id":"r1","status":"failed"}`), ErrNoMatch},
		{"other secret", []Secret{stranger}, good, body, ErrNoMatch},
		{"no secrets", nil, good, body, ErrNoMatch},
		{"forged signature", []Secret{current}, with(good, HeaderSignature, forged), body, ErrNoMatch},
		{"forged among others", []Secret{current}, with(good, HeaderSignature, forged+" v1a,AAAA "+good.Get(HeaderSignature)+" "+forged), body, nil},
		{"only another version", []Secret{current}, with(good, HeaderSignature, "v2,"+strings.TrimPrefix(good.Get(HeaderSignature), "v1,")), body, ErrNoMatch},
		{"other id", []Secret{current}, with(good, HeaderID, "msg_2"), body, ErrNoMatch},
		{"other timestamp", []Secret{current}, with(good, HeaderTimestamp, strconv.FormatInt(now.Unix()-1, 10)), body, ErrNoMatch},
		{"missing id", []Secret{current}, with(good, HeaderID, ""), body, ErrMissingHeader},
		{"missing timestamp", []Secret{current}, with(good, HeaderTimestamp, ""), body, ErrMissingHeader},
		{"missing signature", []Secret{current}, with(good, HeaderSignature, ""), body, ErrMissingHeader},
		{"timestamp in ms", []Secret{current}, with(good, HeaderTimestamp, strconv.FormatInt(now.UnixMilli(), 10)), body, ErrTimestamp},
		{"timestamp not a number", []Secret{current}, with(good, HeaderTimestamp, "yesterday"), body, ErrInvalidHeader},
		{"timestamp with sign", []Secret{current}, with(good, HeaderTimestamp, "+"+good.Get(HeaderTimestamp)), body, ErrInvalidHeader},
		{"id with a dot", []Secret{current}, with(good, HeaderID, "msg.1"), body, ErrInvalidHeader},
		{"entry without comma", []Secret{current}, with(good, HeaderSignature, "v1"), body, ErrInvalidHeader},
		{"huge header", []Secret{current}, with(good, HeaderSignature, strings.Repeat(forged+" ", 100)), body, ErrInvalidHeader},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := Verify(tt.secrets, tt.headers, tt.body, now)
			if tt.want == nil && err != nil {
				t.Fatalf("Verify: %v, want success", err)
			}
			if tt.want != nil && !errors.Is(err, tt.want) {
				t.Fatalf("Verify: %v, want %v", err, tt.want)
			}
		})
	}
}

func TestSignRejectsBadIDs(t *testing.T) {
	sec := newSecret(t)
	for _, id := range []string{"", "a.b", "a b", "a\nb"} {
		if _, err := Sign(sec, id, time.Now(), nil); !errors.Is(err, ErrInvalidHeader) {
			t.Errorf("Sign(id %q): %v, want ErrInvalidHeader", id, err)
		}
	}
}

func newSecret(t testing.TB) Secret {
	t.Helper()
	s, err := NewSecret()
	if err != nil {
		t.Fatal(err)
	}
	return s
}
