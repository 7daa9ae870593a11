package webhook

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"time"
)

// Schedule plans the retries of a failed delivery: explicit first delays, then exponential growth capped
// at MaxDelay, each delay scaled by a random factor in [1-Jitter, 1+Jitter], until the next attempt would
// start more than Total after the first attempt. The zero value is not usable: start from DefaultSchedule.
type Schedule struct {
	// Initial are the delays before the first retries (after the first failed attempt, the second, ...).
	Initial []time.Duration
	// Factor multiplies the previous delay once Initial is used up (at least 1).
	Factor float64
	// MaxDelay caps every delay before jitter.
	MaxDelay time.Duration
	// Total bounds the whole effort: no retry is planned later than Total after the first attempt.
	Total time.Duration
	// Jitter is the fraction (0 to 1) by which each delay is spread randomly, either way, so receivers
	// that failed together are not hit together again.
	Jitter float64
}

// DefaultSchedule retries after 1 s, 5 s, 30 s and 2 min, then 8 min, 32 min, 2 h 8 min and every 4 h
// after that, each ±20 %, within 24 h: 12 retries (13 attempts) when every attempt fails.
func DefaultSchedule() Schedule {
	return Schedule{
		Initial:  []time.Duration{time.Second, 5 * time.Second, 30 * time.Second, 2 * time.Minute},
		Factor:   4,
		MaxDelay: 4 * time.Hour,
		Total:    24 * time.Hour,
		Jitter:   0.2,
	}
}

// Validate reports every problem with the schedule.
func (s Schedule) Validate() error {
	var errs []error
	if len(s.Initial) == 0 {
		errs = append(errs, errors.New("webhook schedule: no initial delays"))
	}
	for i, d := range s.Initial {
		if d <= 0 {
			errs = append(errs, fmt.Errorf("webhook schedule: initial delay %d is %s; it must be positive", i+1, d))
		}
	}
	if s.Factor < 1 || s.Factor != s.Factor {
		errs = append(errs, fmt.Errorf("webhook schedule: factor %v must be at least 1", s.Factor))
	}
	if s.MaxDelay <= 0 {
		errs = append(errs, fmt.Errorf("webhook schedule: max delay %s must be positive", s.MaxDelay))
	}
	if s.Total <= 0 {
		errs = append(errs, fmt.Errorf("webhook schedule: total %s must be positive", s.Total))
	}
	if s.Jitter < 0 || s.Jitter > 1 || s.Jitter != s.Jitter {
		errs = append(errs, fmt.Errorf("webhook schedule: jitter %v must be from 0 to 1", s.Jitter))
	}
	return errors.Join(errs...)
}

// Base returns the delay before retry number retry (1 is the first retry) without jitter.
func (s Schedule) Base(retry int) time.Duration {
	if retry < 1 || len(s.Initial) == 0 {
		return 0
	}
	if retry <= len(s.Initial) {
		return min(s.Initial[retry-1], s.MaxDelay)
	}
	d := min(s.Initial[len(s.Initial)-1], s.MaxDelay)
	for range retry - len(s.Initial) {
		next := time.Duration(float64(d) * s.Factor)
		if next >= s.MaxDelay || next < d { // capped, or overflowed
			return s.MaxDelay
		}
		d = next
	}
	return d
}

// Next returns the delay before retry number retry (1 is the first retry, after the first failed attempt),
// given elapsed, the time since the first attempt started. It returns false when the retry would start
// later than Total after the first attempt: the delivery has failed for good. random returns a number in
// [0, 1) for the jitter; nil uses math/rand/v2.
func (s Schedule) Next(retry int, elapsed time.Duration, random func() float64) (time.Duration, bool) {
	if retry < 1 {
		return 0, false
	}
	if random == nil {
		random = rand.Float64
	}
	d := s.Base(retry)
	if s.Jitter > 0 {
		d = time.Duration(float64(d) * (1 - s.Jitter + 2*s.Jitter*random()))
	}
	if elapsed+d > s.Total {
		return 0, false
	}
	return d, true
}

// Plan lists the delays without jitter of every retry that fits in Total when every attempt fails
// instantly: the schedule as documentation shows it.
func (s Schedule) Plan() []time.Duration {
	var plan []time.Duration
	var elapsed time.Duration
	for retry := 1; ; retry++ {
		d := s.Base(retry)
		if d <= 0 || elapsed+d > s.Total {
			return plan
		}
		elapsed += d
		plan = append(plan, d)
	}
}
