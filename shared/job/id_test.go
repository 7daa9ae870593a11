package job

import (
	"errors"
	"regexp"
	"strings"
	"testing"
)

// The patterns validRequestID and checkResultKey stand for (kept here as the oracle).
var (
	requestIDPattern = regexp.MustCompile(`^[A-Za-z0-9_-]{1,128}$`)
	resultKeyPattern = regexp.MustCompile(`^results/[A-Za-z0-9_-]{1,128}\.json$`)
)

// FuzzRequestID checks the hand-written request id and result key checks against their patterns. Its seeds
// run with go test; `go test -fuzz FuzzRequestID ./job/` (in shared/) explores further.
func FuzzRequestID(f *testing.F) {
	for _, seed := range []string{"", "a", "req-1_X", strings.Repeat("a", 128), strings.Repeat("a", 129), "a b", "a/b",
		"a.b", "ä", "a\x00", "a\n", "..", "-", "_", "results/x.json", "x.json"} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, id string) {
		want := requestIDPattern.MatchString(id)
		if got := CheckRequestID(id) == nil; got != want {
			t.Fatalf("CheckRequestID(%q) accepts: %v, the pattern: %v", id, got, want)
		}
		if err := CheckRequestID(id); err != nil && !errors.Is(err, ErrInvalid) {
			t.Fatalf("CheckRequestID(%q) = %v, want ErrInvalid", id, err)
		}
		for _, key := range []string{ResultKey(id), id, "results/" + id, id + ".json"} {
			want := resultKeyPattern.MatchString(key)
			if got := checkResultKey(key) == nil; got != want {
				t.Fatalf("checkResultKey(%q) accepts: %v, the pattern: %v", key, got, want)
			}
		}
	})
}
