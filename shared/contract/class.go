package contract

import (
	"context"
	"errors"
)

// Class is how a failure should be handled. The worker derives ack/nack/requeue from it and the gateway
// derives the HTTP status from it, so every error is classified exactly once.
type Class int

// The classes of failure.
const (
	// Permanent: retrying the same message cannot help (bad input, unknown script, script raised).
	Permanent Class = iota
	// Transient: the platform failed for a reason that may pass (connection lost, broker busy).
	Transient
	// Cancelled: the caller or the process gave up (deadline, shutdown).
	Cancelled
)

func (c Class) String() string {
	switch c {
	case Permanent:
		return "permanent"
	case Transient:
		return "transient"
	case Cancelled:
		return "cancelled"
	}
	return "unknown"
}

// TransientError marks err as transient.
type TransientError struct{ Err error }

func (e *TransientError) Error() string { return e.Err.Error() }
func (e *TransientError) Unwrap() error { return e.Err }

// Transiently wraps err as transient; nil stays nil.
func Transiently(err error) error {
	if err == nil {
		return nil
	}
	return &TransientError{Err: err}
}

// Classify tells how err should be handled.
func Classify(err error) Class {
	var te *TransientError
	switch {
	case errors.As(err, &te):
		return Transient
	case errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded), errors.Is(err, ErrExpired):
		return Cancelled
	}
	return Permanent
}
