package proctest

import (
	"errors"
	"fmt"
	"syscall"
	"testing"
)

// RetryOnBusyPort tries again only on a busy port, at most three times in all, and returns the last error.
func TestRetryOnBusyPort(t *testing.T) {
	busy := fmt.Errorf("gateway address is not free: %w", syscall.EADDRINUSE)
	other := errors.New("missing binary")
	for _, tc := range []struct {
		name      string
		errs      []error // what each call returns
		wantCalls int
		want      error
	}{
		{"busy, then started", []error{busy, busy, nil}, 3, nil},
		{"busy every time", []error{busy, busy, busy, nil}, 3, busy},
		{"another error", []error{other, nil}, 1, other},
		{"started at once", []error{nil}, 1, nil},
	} {
		calls := 0
		err := RetryOnBusyPort(t, func() error {
			calls++
			return tc.errs[calls-1]
		})
		if calls != tc.wantCalls || !errors.Is(err, tc.want) || (tc.want == nil && err != nil) {
			t.Errorf("%s: %d calls, %v; want %d calls, %v", tc.name, calls, err, tc.wantCalls, tc.want)
		}
	}
}
