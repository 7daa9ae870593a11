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

// CodedError carries the stable code an error is reported with (in a reply, or an HTTP error body).
type CodedError struct {
	Code Code
	Err  error
}

func (e *CodedError) Error() string { return e.Err.Error() }
func (e *CodedError) Unwrap() error { return e.Err }

// WithCode marks err with code; nil stays nil. The mark does not change err's class (see Classify).
func WithCode(code Code, err error) error {
	if err == nil {
		return nil
	}
	return &CodedError{Code: code, Err: err}
}

// CodeOf returns the code err carries (the outermost one), or "" when it carries none. Together with
// Classify it is the one classification of an error: the worker settles a task by its class and the
// gateway answers with its code (and the HTTP status the gateway's table gives that code).
func CodeOf(err error) Code {
	var ce *CodedError
	if errors.As(err, &ce) {
		return ce.Code
	}
	return ""
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
