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
	// ErrConnectionLost: the connection dropped while the call was in flight.
	ErrConnectionLost = contract.Transiently(errors.New("connection to the broker was lost"))
	// ErrClosed: the component was closed.
	ErrClosed = errors.New("broker client closed")
)
