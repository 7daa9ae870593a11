package broker

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"strconv"
	"syscall"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"
)

// LoginTimeout bounds CheckLogin when its context allows longer: a broker that answers takes milliseconds to
// accept or refuse a login; one that does not answer in this time is reported as such.
const LoginTimeout = 5 * time.Second

// CheckLogin logs in to the broker at rawURL (an amqp:// or amqps:// URL) and leaves again: the check every
// binary runs at start, so that a wrong password or an unknown virtual host is reported at once with the
// broker's own reason ("403 username or password not allowed") instead of after a round of reconnects. It
// returns nil when the broker accepted the login and opened the virtual host, else a *LoginError. It waits no
// longer than ctx allows, nor than LoginTimeout.
//
// It speaks the AMQP 0-9-1 handshake itself rather than through amqp091-go, whose handshake does not
// advertise the authentication_failure_close capability: without it RabbitMQ answers a refused login by
// waiting three seconds and dropping the connection without a word; with it, the broker says why at once.
func CheckLogin(ctx context.Context, rawURL string) error {
	uri, err := amqp.ParseURI(rawURL)
	if err != nil {
		return &LoginError{URL: Redact(rawURL), Reason: "the URL is not an AMQP URL: " + err.Error(), Err: err}
	}
	ctx, cancel := context.WithTimeout(ctx, LoginTimeout)
	defer cancel()
	if err := login(ctx, uri); err != nil {
		why, known := explain(err)
		if !known {
			why += ": " + err.Error()
		}
		return &LoginError{URL: Redact(rawURL), Reason: why, Err: err}
	}
	return nil
}

// LoginError is a failed CheckLogin: the broker refused the login or the virtual host, or could not be
// reached.
type LoginError struct {
	// URL is the broker's URL with its password redacted.
	URL string
	// Reason is Explain's sentence (with the error's own text when Explain has only a generic one).
	Reason string
	Err    error
}

func (e *LoginError) Error() string {
	return fmt.Sprintf("AMQP login to %s failed: %s", e.URL, e.Reason)
}
func (e *LoginError) Unwrap() error { return e.Err }

// AMQP 0-9-1 connection class (10) methods the login handshake uses.
const (
	methodStart   = 10
	methodStartOk = 11
	methodTune    = 30
	methodTuneOk  = 31
	methodOpen    = 40
	methodOpenOk  = 41
	methodClose   = 50
	methodCloseOk = 51
)

// login runs the handshake: protocol header, start, start-ok (PLAIN, advertising
// authentication_failure_close), tune, tune-ok, open of the virtual host, then close. A refusal comes back as
// the broker's connection.close, returned as an *amqp.Error.
func login(ctx context.Context, uri amqp.URI) error {
	addr := net.JoinHostPort(uri.Host, strconv.Itoa(uri.Port))
	var d net.Dialer
	conn, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return err
	}
	defer conn.Close()
	if dl, ok := ctx.Deadline(); ok {
		_ = conn.SetDeadline(dl)
	}
	stop := context.AfterFunc(ctx, func() { _ = conn.SetDeadline(time.Now()) })
	defer stop()
	if uri.Scheme == "amqps" {
		tc := tls.Client(conn, &tls.Config{ServerName: uri.Host, MinVersion: tls.VersionTLS12})
		if err := tc.HandshakeContext(ctx); err != nil {
			return fmt.Errorf("TLS handshake with %s: %w", addr, err)
		}
		conn = tc
	}
	r := bufio.NewReader(conn)
	if _, err := conn.Write([]byte("AMQP\x00\x00\x09\x01")); err != nil {
		return err
	}
	if _, err := expect(r, methodStart); err != nil {
		return err
	}
	var props bytes.Buffer
	table(&props, map[string]any{
		"product":         "scrapeplatform login check",
		"connection_name": "login-check",
		"capabilities":    map[string]any{"authentication_failure_close": true},
	})
	var startOk bytes.Buffer
	startOk.Write(props.Bytes())
	shortstr(&startOk, "PLAIN")
	longstr(&startOk, "\x00"+uri.Username+"\x00"+uri.Password)
	shortstr(&startOk, "en_US")
	if err := send(conn, methodStartOk, startOk.Bytes()); err != nil {
		return err
	}
	tune, err := expect(r, methodTune)
	if err != nil {
		return err
	}
	if len(tune) < 8 {
		return errors.New("the broker sent a short connection.tune")
	}
	var tuneOk bytes.Buffer
	tuneOk.Write(tune[:6]) // the broker's channel-max and frame-max, accepted as they are
	tuneOk.Write([]byte{0, 0})
	if err := send(conn, methodTuneOk, tuneOk.Bytes()); err != nil {
		return err
	}
	var open bytes.Buffer
	shortstr(&open, uri.Vhost)
	shortstr(&open, "")
	open.WriteByte(0)
	if err := send(conn, methodOpen, open.Bytes()); err != nil {
		return err
	}
	if _, err := expect(r, methodOpenOk); err != nil {
		return err
	}
	// Leave politely, so the broker logs a closed connection rather than a dropped one.
	var bye bytes.Buffer
	bye.Write([]byte{0x00, 0xc8}) // 200 reply-success
	shortstr(&bye, "login check done")
	bye.Write([]byte{0, 0, 0, 0})
	if err := send(conn, methodClose, bye.Bytes()); err == nil {
		_, _ = expect(r, methodCloseOk)
	}
	return nil
}

// expect reads frames until a connection-class method arrives and returns its arguments: those of method, or
// the broker's refusal when it is connection.close.
func expect(r *bufio.Reader, method uint16) ([]byte, error) {
	for {
		var head [7]byte
		if _, err := io.ReadFull(r, head[:]); err != nil {
			if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
				return nil, fmt.Errorf("the broker closed the connection during the handshake: %w", err)
			}
			return nil, err
		}
		if bytes.HasPrefix(head[:], []byte("AMQP")) {
			return nil, fmt.Errorf("the server wants AMQP protocol version %v, not 0-9-1", head[4:7])
		}
		size := binary.BigEndian.Uint32(head[3:7])
		if size > 1<<20 {
			return nil, fmt.Errorf("the broker sent a frame of %d bytes during the handshake", size)
		}
		payload := make([]byte, size+1)
		if _, err := io.ReadFull(r, payload); err != nil {
			return nil, err
		}
		if head[0] != 1 || size < 4 { // heartbeats and anything else but a method frame
			continue
		}
		class, got := binary.BigEndian.Uint16(payload[0:2]), binary.BigEndian.Uint16(payload[2:4])
		args := payload[4:size]
		switch {
		case class == 10 && got == method:
			return args, nil
		case class == 10 && got == methodClose:
			return nil, closeReason(args)
		}
		return nil, fmt.Errorf("the broker sent method %d.%d, expected 10.%d", class, got, method)
	}
}

// closeReason reads connection.close's reply-code and reply-text.
func closeReason(args []byte) error {
	if len(args) < 3 || len(args) < 3+int(args[2]) {
		return &amqp.Error{Code: amqp.ConnectionForced, Reason: "connection closed by the broker"}
	}
	return &amqp.Error{Code: int(binary.BigEndian.Uint16(args[0:2])), Reason: string(args[3 : 3+int(args[2])]), Server: true}
}

// send writes one method frame of the connection class on channel 0.
func send(w io.Writer, method uint16, args []byte) error {
	var f bytes.Buffer
	f.WriteByte(1)
	f.Write([]byte{0, 0})
	_ = binary.Write(&f, binary.BigEndian, uint32(4+len(args)))
	_ = binary.Write(&f, binary.BigEndian, uint16(10))
	_ = binary.Write(&f, binary.BigEndian, method)
	f.Write(args)
	f.WriteByte(0xce)
	_, err := w.Write(f.Bytes())
	return err
}

func shortstr(b *bytes.Buffer, s string) {
	if len(s) > 255 {
		s = s[:255]
	}
	b.WriteByte(byte(len(s)))
	b.WriteString(s)
}

func longstr(b *bytes.Buffer, s string) {
	_ = binary.Write(b, binary.BigEndian, uint32(len(s)))
	b.WriteString(s)
}

// table writes an AMQP field table of strings, booleans and nested tables.
func table(b *bytes.Buffer, t map[string]any) {
	var body bytes.Buffer
	for k, v := range t {
		shortstr(&body, k)
		switch v := v.(type) {
		case string:
			body.WriteByte('S')
			longstr(&body, v)
		case bool:
			body.WriteByte('t')
			if v {
				body.WriteByte(1)
			} else {
				body.WriteByte(0)
			}
		case map[string]any:
			body.WriteByte('F')
			table(&body, v)
		}
	}
	_ = binary.Write(b, binary.BigEndian, uint32(body.Len()))
	b.Write(body.Bytes())
}

// Explain says in a few words why a connection to the broker failed or was lost, with the broker's own
// reason when it gave one: "the broker refused the user name or password: 403 ACCESS_REFUSED - Login was
// refused ... (check the user and password in RABBITMQ_URL)", "connection refused: nothing listens at the
// broker's address (is RabbitMQ running?)". It names no address, user or password, so a health check may
// show it to anyone; the logs carry the error itself next to it. Sessions log it once per change.
func Explain(err error) string {
	why, _ := explain(err)
	return why
}

// explain is Explain, and whether it recognised the error (else the sentence is a generic one).
func explain(err error) (string, bool) {
	if err == nil {
		return "", true
	}
	var ae *amqp.Error
	if errors.As(err, &ae) {
		reason := fmt.Sprintf("%d %s", ae.Code, ae.Reason)
		switch ae.Code {
		case amqp.AccessRefused:
			return "the broker refused the user name or password: " + reason + " (check the user and password in RABBITMQ_URL)", true
		case amqp.NotAllowed:
			return "the broker refused the virtual host: " + reason + " (check the virtual host in RABBITMQ_URL and the user's permissions on it)", true
		case amqp.ConnectionForced:
			return "the broker closed the connection: " + reason, true
		}
		return "the broker said: " + reason, true
	}
	var dnsErr *net.DNSError
	switch {
	case errors.Is(err, syscall.ECONNREFUSED):
		return "connection refused: nothing listens at the broker's address (is RabbitMQ running?)", true
	case errors.Is(err, context.DeadlineExceeded), errors.Is(err, syscall.ETIMEDOUT), isTimeout(err):
		return "the broker did not answer in time", true
	case errors.As(err, &dnsErr):
		return "the broker's host name does not resolve", true
	case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF), errors.Is(err, syscall.ECONNRESET):
		return "the broker closed the connection without a reason", true
	}
	return "the connection to the broker failed", false
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}
