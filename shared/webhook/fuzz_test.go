package webhook

import (
	"errors"
	"net/http"
	"testing"
	"time"
)

// FuzzVerify feeds arbitrary header values to Verify: it must never panic, must classify every failure as
// one of its four errors, and whatever it accepts must depend on the key and on the body (the same headers
// fail with another secret and with another body). Seeds are in testdata/fuzz/FuzzVerify.
func FuzzVerify(f *testing.F) {
	sec, err := ParseSecret(vectorSecret)
	if err != nil {
		f.Fatal(err)
	}
	stranger, err := ParseSecret("whsec_" + "QUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUE=")
	if err != nil {
		f.Fatal(err)
	}
	f.Add(vectorID, "1614265330", vectorSignature, []byte(vectorBody))
	f.Fuzz(func(t *testing.T, id, ts, sig string, body []byte) {
		h := http.Header{}
		h.Set(HeaderID, id)
		h.Set(HeaderTimestamp, ts)
		h.Set(HeaderSignature, sig)
		now := time.Unix(1614265330, 0)
		err := Verify([]Secret{sec}, h, body, now)
		if err == nil {
			if err := Verify([]Secret{stranger}, h, body, now); !errors.Is(err, ErrNoMatch) {
				t.Fatalf("headers accepted for the test secret also pass with another one: %v", err)
			}
			if err := Verify([]Secret{sec}, h, append(body[:len(body):len(body)], 'x'), now); !errors.Is(err, ErrNoMatch) {
				t.Fatalf("headers accepted for a body also pass for a longer body: %v", err)
			}
			return
		}
		for _, known := range []error{ErrMissingHeader, ErrInvalidHeader, ErrTimestamp, ErrNoMatch} {
			if errors.Is(err, known) {
				return
			}
		}
		t.Fatalf("Verify returned an unclassified error: %v", err)
	})
}
