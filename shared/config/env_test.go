package config

import (
	"strings"
	"testing"
	"time"
)

func TestEnvReportsEveryProblem(t *testing.T) {
	t.Parallel()
	vars := map[string]string{"N": "x", "D": "-1s", "O": "maybe", "B": "perhaps", "F": "1.5", "GOOD_D": "2.5", "GOOD_N": " 7 ", "GOOD_F": "0.25"}
	e := NewEnv(func(k string) string { return vars[k] })
	if got := e.Int("GOOD_N", 1, 0, 10); got != 7 {
		t.Errorf("GOOD_N = %d", got)
	}
	if got := e.Duration("GOOD_D", 0, 0, time.Minute); got != 2500*time.Millisecond {
		t.Errorf("GOOD_D = %v", got)
	}
	if got := e.Float("GOOD_F", 0.9, 0, 1); got != 0.25 {
		t.Errorf("GOOD_F = %v", got)
	}
	if got := e.Float("F", 0.9, 0, 1); got != 0.9 {
		t.Errorf("F out of range should fall back to the default, got %v", got)
	}
	if got := e.String("UNSET", "def"); got != "def" {
		t.Errorf("UNSET = %q", got)
	}
	if got := e.Int("N", 3, 0, 10); got != 3 {
		t.Errorf("bad N should fall back to the default, got %d", got)
	}
	e.Duration("D", time.Second, 0, time.Minute)
	e.OneOf("O", "a", "a", "b")
	e.Bool("B", false)
	err := e.Err()
	if err == nil {
		t.Fatal("want errors")
	}
	for _, name := range []string{"N=", "D=", "O=", "B=", "F="} {
		if !strings.Contains(err.Error(), name) {
			t.Errorf("error does not name %s: %v", name, err)
		}
	}
}
