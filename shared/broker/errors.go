package broker

import (
	"errors"

	"github.com/scrapeplatform/platform/shared/contract"
)

// Errors the broker layer returns, each classified once: its class (contract.Classify) and its code
// (contract.CodeOf). All but ErrClosed and ErrMalformedReply are transient.
var (
	// ErrUnavailable: no usable connection to the broker came up in time.
	ErrUnavailable = unavailable("message broker unavailable")
	// ErrNacked: the broker refused to take responsibility for a message. On the task queue that means it is
	// over its bound (a max-length policy with reject-publish): code queue_full.
	ErrNacked = contract.Transiently(contract.WithCode(contract.CodeQueueFull, errors.New("broker did not accept the message (nack)")))
	// ErrUnroutable: a mandatory message matched no queue.
	ErrUnroutable = unavailable("message could not be routed to any queue")
	// ErrBlocked: the broker blocks publishers (a memory or disk alarm); nothing is published until it clears.
	ErrBlocked = unavailable("the broker refuses new messages for now (memory or disk alarm)")
	// ErrConnectionLost: the connection dropped while the call was in flight.
	ErrConnectionLost = unavailable("connection to the broker was lost")
	// ErrClosed: the component was closed. Permanent: retrying on it cannot help.
	ErrClosed = contract.WithCode(contract.CodeBrokerUnavailable, errors.New("broker client closed"))
	// ErrMalformedReply: a reply arrived for the call but does not parse or validate (contract.ParseReply).
	ErrMalformedReply = contract.WithCode(contract.CodeInternal, errors.New("a worker sent a malformed reply"))
)

func unavailable(msg string) error {
	return contract.Transiently(contract.WithCode(contract.CodeBrokerUnavailable, errors.New(msg)))
}
