package webhook

import (
	"testing"
	"time"
)

func TestScheduleBase(t *testing.T) {
	s := DefaultSchedule()
	if err := s.Validate(); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		retry int
		want  time.Duration
	}{
		{0, 0},
		{1, time.Second},
		{2, 5 * time.Second},
		{3, 30 * time.Second},
		{4, 2 * time.Minute},
		{5, 8 * time.Minute},
		{6, 32 * time.Minute},
		{7, 128 * time.Minute},
		{8, 4 * time.Hour},
		{50, 4 * time.Hour},
		{1 << 20, 4 * time.Hour},
	}
	for _, tt := range tests {
		if got := s.Base(tt.retry); got != tt.want {
			t.Errorf("Base(%d) = %s, want %s", tt.retry, got, tt.want)
		}
	}
}

func TestSchedulePlan(t *testing.T) {
	tests := []struct {
		name string
		s    Schedule
		want []time.Duration
	}{
		{"default", DefaultSchedule(), []time.Duration{
			time.Second, 5 * time.Second, 30 * time.Second, 2 * time.Minute, 8 * time.Minute, 32 * time.Minute,
			128 * time.Minute, 4 * time.Hour, 4 * time.Hour, 4 * time.Hour, 4 * time.Hour, 4 * time.Hour}},
		{"one hour", func() Schedule { s := DefaultSchedule(); s.Total = time.Hour; return s }(), []time.Duration{
			time.Second, 5 * time.Second, 30 * time.Second, 2 * time.Minute, 8 * time.Minute, 32 * time.Minute}},
		{"doubling from 1 s, capped at 10 s, 40 s in all", Schedule{
			Initial: []time.Duration{time.Second}, Factor: 2, MaxDelay: 10 * time.Second, Total: 40 * time.Second},
			[]time.Duration{time.Second, 2 * time.Second, 4 * time.Second, 8 * time.Second, 10 * time.Second, 10 * time.Second}},
		{"total shorter than the first delay", Schedule{
			Initial: []time.Duration{time.Minute}, Factor: 2, MaxDelay: time.Hour, Total: time.Second}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := tt.s.Plan()
			if len(got) != len(tt.want) {
				t.Fatalf("Plan() = %v, want %v", got, tt.want)
			}
			for i := range got {
				if got[i] != tt.want[i] {
					t.Fatalf("Plan() = %v, want %v", got, tt.want)
				}
			}
		})
	}
}

func TestScheduleNext(t *testing.T) {
	s := DefaultSchedule()
	fixed := func(v float64) func() float64 { return func() float64 { return v } }
	tests := []struct {
		name    string
		retry   int
		elapsed time.Duration
		random  float64
		want    time.Duration
		ok      bool
	}{
		{"first retry, lowest jitter", 1, 0, 0, 800 * time.Millisecond, true},
		{"first retry, no jitter", 1, 0, 0.5, time.Second, true},
		{"first retry, highest jitter", 1, 0, 0.999999, 1199999600 * time.Nanosecond, true},
		{"second retry", 2, time.Second, 0.5, 5 * time.Second, true},
		{"fourth retry", 4, 36 * time.Second, 0.25, 108 * time.Second, true},
		{"late retry", 10, 10 * time.Hour, 0.5, 4 * time.Hour, true},
		{"retry that ends exactly at Total", 9, 20 * time.Hour, 0.5, 4 * time.Hour, true},
		{"retry past Total", 9, 20*time.Hour + time.Second, 0.5, 0, false},
		{"jitter pushes it past Total", 9, 19*time.Hour + 20*time.Minute, 0.99, 0, false},
		{"retry 0 is not a retry", 0, 0, 0.5, 0, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, ok := s.Next(tt.retry, tt.elapsed, fixed(tt.random))
			if got != tt.want || ok != tt.ok {
				t.Errorf("Next(%d, %s) = %s, %v; want %s, %v", tt.retry, tt.elapsed, got, ok, tt.want, tt.ok)
			}
		})
	}
	// The default random source stays within the jitter band.
	for range 1000 {
		d, ok := s.Next(3, 0, nil)
		if !ok || d < 24*time.Second || d > 36*time.Second {
			t.Fatalf("Next(3) with math/rand = %s, %v; want 24s..36s", d, ok)
		}
	}
}

func TestScheduleValidate(t *testing.T) {
	bad := []Schedule{
		{},
		{Initial: []time.Duration{0}, Factor: 2, MaxDelay: time.Hour, Total: time.Hour},
		{Initial: []time.Duration{time.Second}, Factor: 0.5, MaxDelay: time.Hour, Total: time.Hour},
		{Initial: []time.Duration{time.Second}, Factor: 2, MaxDelay: 0, Total: time.Hour},
		{Initial: []time.Duration{time.Second}, Factor: 2, MaxDelay: time.Hour, Total: 0},
		{Initial: []time.Duration{time.Second}, Factor: 2, MaxDelay: time.Hour, Total: time.Hour, Jitter: 1.5},
	}
	for i, s := range bad {
		if err := s.Validate(); err == nil {
			t.Errorf("schedule %d (%+v) validated", i, s)
		}
	}
}
