package stack

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"time"
)

// amqpProtocolHeader opens an AMQP 0-9-1 connection.
var amqpProtocolHeader = []byte("AMQP\x00\x00\x09\x01")

// errNoAnswer means nothing accepted a TCP connection at the address.
var errNoAnswer = errors.New("no answer")

// errNotAMQP means something accepted the connection but did not answer as
// an AMQP 0-9-1 broker.
var errNotAMQP = errors.New("not an AMQP 0-9-1 broker")

// probeAMQP checks that an AMQP 0-9-1 broker answers at addr: it sends the
// protocol header and expects the broker's first frame to be the
// connection.start method. No credentials are sent. It returns nil,
// errNoAnswer or errNotAMQP (both wrapped with details).
func probeAMQP(ctx context.Context, addr string, useTLS bool, timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	d := &net.Dialer{}
	conn, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return fmt.Errorf("%w: %w", errNoAnswer, err)
	}
	defer conn.Close()
	if dl, ok := ctx.Deadline(); ok {
		_ = conn.SetDeadline(dl)
	}
	if useTLS {
		host, _, _ := net.SplitHostPort(addr)
		// This only asks whether a broker is alive; the real clients verify
		// the certificate, and nothing secret is sent here.
		tc := tls.Client(conn, &tls.Config{ServerName: host, InsecureSkipVerify: true}) //nolint:gosec // liveness probe only
		if err := tc.HandshakeContext(ctx); err != nil {
			return fmt.Errorf("%w: TLS handshake: %w", errNotAMQP, err)
		}
		conn = tc
	}
	if _, err := conn.Write(amqpProtocolHeader); err != nil {
		return fmt.Errorf("%w: send protocol header: %w", errNotAMQP, err)
	}
	// Frame: type(1) channel(2) size(4), then the method's class(2) and
	// method(2) ids. connection.start is class 10, method 10.
	var head [11]byte
	if _, err := io.ReadFull(conn, head[:]); err != nil {
		return fmt.Errorf("%w: read reply: %w", errNotAMQP, err)
	}
	if bytes.HasPrefix(head[:], []byte("AMQP")) {
		return fmt.Errorf("%w: it wants protocol version %v", errNotAMQP, head[4:8])
	}
	frameType := head[0]
	channel := binary.BigEndian.Uint16(head[1:3])
	class := binary.BigEndian.Uint16(head[7:9])
	method := binary.BigEndian.Uint16(head[9:11])
	if frameType != 1 || channel != 0 || class != 10 || method != 10 {
		return fmt.Errorf("%w: unexpected first frame (type %d, channel %d, method %d.%d)",
			errNotAMQP, frameType, channel, class, method)
	}
	return nil
}
