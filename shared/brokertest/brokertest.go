// Package brokertest gives integration tests a real RabbitMQ: the one at RABBITMQ_URL (default
// amqp://guest:guest@127.0.0.1:5672/). A test that needs a broker fails, never skips, when none answers:
// CI must start one (see .ci/run).
package brokertest

import (
	"crypto/rand"
	"encoding/hex"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"
)

// DefaultURL is the broker tests use when RABBITMQ_URL is not set.
const DefaultURL = "amqp://guest:guest@127.0.0.1:5672/"

// URL returns the broker URL for tests, failing t if no broker answers there.
func URL(t testing.TB) string {
	t.Helper()
	u := os.Getenv("RABBITMQ_URL")
	if u == "" {
		u = DefaultURL
	}
	conn, err := amqp.DialConfig(u, amqp.Config{Dial: amqp.DefaultDial(5 * time.Second)})
	if err != nil {
		t.Fatalf("integration tests need a real RabbitMQ at %s (set RABBITMQ_URL, or start one: rabbitmq-server -detached): %v", u, err)
	}
	conn.Close()
	return u
}

// Name returns a unique name with the given prefix, for queues and consumers of one test.
func Name(prefix string) string {
	b := make([]byte, 6)
	_, _ = rand.Read(b)
	return prefix + "-" + hex.EncodeToString(b)
}

// Channel opens a plain connection and channel for a test's own use (responders, inspection), closed at
// cleanup.
func Channel(t testing.TB, url string) (*amqp.Connection, *amqp.Channel) {
	t.Helper()
	conn, err := amqp.Dial(url)
	if err != nil {
		t.Fatalf("dial: %v", err)
	}
	ch, err := conn.Channel()
	if err != nil {
		t.Fatalf("channel: %v", err)
	}
	t.Cleanup(func() { conn.Close() })
	return conn, ch
}

// DeleteQueues deletes the named queues and exchanges at cleanup.
func DeleteQueues(t testing.TB, url string, queues []string, exchanges []string) {
	t.Helper()
	t.Cleanup(func() {
		conn, err := amqp.DialConfig(url, amqp.Config{Dial: amqp.DefaultDial(5 * time.Second)})
		if err != nil {
			return
		}
		defer conn.Close()
		for _, q := range queues {
			if ch, err := conn.Channel(); err == nil {
				_, _ = ch.QueueDelete(q, false, false, false)
				ch.Close()
			}
		}
		for _, x := range exchanges {
			if ch, err := conn.Channel(); err == nil {
				_ = ch.ExchangeDelete(x, false, false)
				ch.Close()
			}
		}
	})
}

// CloseConnection has the broker close the client connection with the given connection name, through
// rabbitmqctl, the way a broker restart or failover drops clients. It fails t when rabbitmqctl is missing
// or no such connection exists within a few seconds.
func CloseConnection(t testing.TB, name string) {
	t.Helper()
	end := time.Now().Add(10 * time.Second)
	for {
		out, err := exec.Command("rabbitmqctl", "-q", "list_connections", "pid", "client_properties").CombinedOutput()
		if err != nil {
			t.Fatalf("rabbitmqctl list_connections: %v\n%s", err, out)
		}
		for _, line := range strings.Split(string(out), "\n") {
			if strings.Contains(line, `"`+name+`"`) {
				pid := strings.Fields(line)[0]
				if out, err := exec.Command("rabbitmqctl", "close_connection", pid, "test: simulated broker failure").CombinedOutput(); err != nil {
					t.Fatalf("rabbitmqctl close_connection: %v\n%s", err, out)
				}
				return
			}
		}
		if time.Now().After(end) {
			t.Fatalf("no connection named %q found", name)
		}
		time.Sleep(200 * time.Millisecond)
	}
}
