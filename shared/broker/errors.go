package broker

import (
	"errors"

	"github.com/scrapeplatform/platform/shared/contract"
)

// Errors the broker layer returns. All of them are transient (see contract.Classify).
var (
	// ErrUnavailable: no usable connection to the broker came up in time.
	ErrUnavailable = contract.Transiently(errors.New("message broker unavailable"))
	// ErrNacked: the broker refused to take responsibility for a message.
	ErrNacked = contract.Transiently(errors.New("broker did not accept the message (nack)"))
	// ErrUnroutable: a mandatory message matched no queue.
	ErrUnroutable = contract.Transiently(errors.New("message could not be routed to any queue"))
	// ErrBlocked: the broker blocks publishers (a memory or disk alarm); nothing is published until it clears.
	ErrBlocked = contract.Transiently(errors.New("the broker refuses new messages for now (memory or disk alarm)"))
	// ErrConnectionLost: the connection dropped while the call was in flight.
	ErrConnectionLost = contract.Transiently(errors.New("connection to the broker was lost"))
	// ErrClosed: the component was closed.
	ErrClosed = errors.New("broker client closed")
)
