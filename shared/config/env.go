// Package config reads configuration from environment variables. Each binary's Load function is a pure
// function of a getenv func; an Env collects every problem so Load can report them all at once.
package config

import (
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Env reads typed values from a getenv function and remembers every invalid one.
type Env struct {
	getenv func(string) string
	errs   []error
}

// NewEnv returns an Env over getenv (usually os.Getenv).
func NewEnv(getenv func(string) string) *Env { return &Env{getenv: getenv} }

// Err returns every problem found so far, joined, or nil.
func (e *Env) Err() error { return errors.Join(e.errs...) }

// Fail records a problem found by the caller's own checks.
func (e *Env) Fail(format string, args ...any) { e.errs = append(e.errs, fmt.Errorf(format, args...)) }

func (e *Env) lookup(name string) (string, bool) {
	v := strings.TrimSpace(e.getenv(name))
	return v, v != ""
}

// String returns the variable, or def when it is unset or empty.
func (e *Env) String(name, def string) string {
	if v, ok := e.lookup(name); ok {
		return v
	}
	return def
}

// OneOf returns the variable, which must be one of allowed, or def.
func (e *Env) OneOf(name, def string, allowed ...string) string {
	v := e.String(name, def)
	if !slices.Contains(allowed, v) {
		e.Fail("%s=%q: must be one of %s", name, v, strings.Join(allowed, ", "))
	}
	return v
}

// Int returns the variable as an integer within [lo, hi], or def.
func (e *Env) Int(name string, def, lo, hi int) int {
	v, ok := e.lookup(name)
	if !ok {
		return def
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < lo || n > hi {
		e.Fail("%s=%q: must be a whole number from %d to %d", name, v, lo, hi)
		return def
	}
	return n
}

// Float returns the variable as a number within [lo, hi], or def.
func (e *Env) Float(name string, def, lo, hi float64) float64 {
	v, ok := e.lookup(name)
	if !ok {
		return def
	}
	f, err := strconv.ParseFloat(v, 64)
	if err != nil || f != f || f < lo || f > hi {
		e.Fail("%s=%q: must be a number from %g to %g", name, v, lo, hi)
		return def
	}
	return f
}

// Duration returns the variable as a duration within [lo, hi], or def. It accepts Go durations ("90s",
// "1m30s") and plain numbers of seconds ("90", "2.5").
func (e *Env) Duration(name string, def, lo, hi time.Duration) time.Duration {
	v, ok := e.lookup(name)
	if !ok {
		return def
	}
	d, err := time.ParseDuration(v)
	if err != nil {
		f, ferr := strconv.ParseFloat(v, 64)
		if ferr != nil || f != f {
			e.Fail("%s=%q: must be a duration such as 30s or a number of seconds", name, v)
			return def
		}
		d = time.Duration(f * float64(time.Second))
	}
	if d < lo || d > hi {
		e.Fail("%s=%q: must be between %s and %s", name, v, lo, hi)
		return def
	}
	return d
}

// Bool returns the variable as a boolean (true/false/1/0/yes/no), or def.
func (e *Env) Bool(name string, def bool) bool {
	v, ok := e.lookup(name)
	if !ok {
		return def
	}
	switch strings.ToLower(v) {
	case "1", "true", "yes", "on":
		return true
	case "0", "false", "no", "off":
		return false
	}
	e.Fail("%s=%q: must be true or false", name, v)
	return def
}
