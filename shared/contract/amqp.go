package contract

import (
	"encoding/json"
	"errors"
	"fmt"
	"mime"
	"strconv"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"
)

// AMQP constants of the contract.
const (
	// ContentType of both documents.
	ContentType = "application/json"
	// RequestType and ReplyType are the AMQP "type" property of the two documents.
	RequestType = "scrape.request.v1"
	ReplyType   = "scrape.reply.v1"
	// DirectReplyTo is RabbitMQ's pseudo-queue for direct reply-to.
	DirectReplyTo = "amq.rabbitmq.reply-to"
	// MaxMessageBytes bounds a request or reply body. Amazon MQ 4.2 rejects messages over 512 KiB by default;
	// we stay under it with room for properties.
	MaxMessageBytes = 500 * 1024
)

// ErrExpired reports a request whose deadline has passed.
var ErrExpired = WithCode(CodeDeadlineExceeded, errors.New("request deadline has passed"))

// Publishing maps req to the AMQP message that carries it, as of now. It fails if the deadline has already
// passed: nobody should publish work that its caller will not wait for.
func (r *Request) Publishing(now time.Time) (amqp.Publishing, error) {
	expiration, err := r.Expiration(now)
	if err != nil {
		return amqp.Publishing{}, err
	}
	body, err := json.Marshal(r)
	if err != nil {
		return amqp.Publishing{}, fmt.Errorf("encode request: %w", err)
	}
	if len(body) > MaxMessageBytes {
		return amqp.Publishing{}, WithCode(CodeInvalidRequest, fmt.Errorf("request is %d bytes; the limit is %d", len(body), MaxMessageBytes))
	}
	return amqp.Publishing{
		ContentType:   ContentType,
		DeliveryMode:  amqp.Persistent,
		CorrelationId: r.RequestID,
		MessageId:     r.RequestID,
		ReplyTo:       DirectReplyTo,
		Type:          RequestType,
		Timestamp:     now.UTC().Truncate(time.Second),
		Expiration:    strconv.FormatInt(expiration.Milliseconds(), 10),
		Body:          body,
	}, nil
}

// Publishing maps rep to the AMQP message that carries it back to the caller.
func (rep *Reply) Publishing(now time.Time) (amqp.Publishing, error) {
	body, err := json.Marshal(rep)
	if err != nil {
		return amqp.Publishing{}, fmt.Errorf("encode reply: %w", err)
	}
	return amqp.Publishing{
		ContentType:   ContentType,
		DeliveryMode:  amqp.Transient, // direct reply-to is transient by nature
		CorrelationId: rep.RequestID,
		MessageId:     rep.RequestID,
		Type:          ReplyType,
		Timestamp:     now.UTC().Truncate(time.Second),
		Body:          body,
	}, nil
}

// ParseRequest decodes and validates the request carried by a delivery. It checks the AMQP properties
// against the body, so a message that was not produced by Request.Publishing is refused.
func ParseRequest(d amqp.Delivery) (*Request, error) {
	if d.Type != "" && d.Type != RequestType {
		return nil, fmt.Errorf("message type %q is not %q", d.Type, RequestType)
	}
	if d.ContentType != "" {
		if mt, _, err := mime.ParseMediaType(d.ContentType); err != nil || mt != ContentType {
			return nil, fmt.Errorf("content type %q is not %q", truncate(d.ContentType, 80), ContentType)
		}
	}
	if len(d.Body) > MaxMessageBytes {
		return nil, fmt.Errorf("request is %d bytes; the limit is %d", len(d.Body), MaxMessageBytes)
	}
	var req Request
	if err := json.Unmarshal(d.Body, &req); err != nil {
		return nil, fmt.Errorf("decode request: %w", err)
	}
	if err := req.Validate(); err != nil {
		return &req, err
	}
	if d.CorrelationId != req.RequestID {
		return &req, fmt.Errorf("correlation_id %q does not match request_id %q", d.CorrelationId, req.RequestID)
	}
	return &req, nil
}

// ParseReply decodes and validates a reply delivery.
func ParseReply(d amqp.Delivery) (*Reply, error) {
	var rep Reply
	if err := json.Unmarshal(d.Body, &rep); err != nil {
		return nil, fmt.Errorf("decode reply: %w", err)
	}
	if err := rep.Validate(); err != nil {
		return nil, err
	}
	if d.CorrelationId != rep.RequestID {
		return nil, fmt.Errorf("correlation_id %q does not match request_id %q", d.CorrelationId, rep.RequestID)
	}
	return &rep, nil
}
