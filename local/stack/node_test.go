package stack

import (
	"context"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"
)

// TestPrivateCluster starts two private nodes, joins them into a cluster, declares a quorum queue on it,
// crashes one node and restarts it, and checks that the message published before the crash survives.
func TestPrivateCluster(t *testing.T) {
	if _, err := exec.LookPath("rabbitmq-server"); err != nil {
		t.Fatal("this test starts private RabbitMQ nodes and needs rabbitmq-server installed (apt-get install rabbitmq-server)")
	}
	t.Parallel()
	ctx, cancel := context.WithTimeout(t.Context(), 3*time.Minute)
	defer cancel()
	base := freePortRange(t, 2)
	dir := t.TempDir()
	var opts []BrokerOptions
	for i := 1; i <= 2; i++ {
		opts = append(opts, BrokerOptions{URL: "amqp://guest:guest@127.0.0.1:" + strconv.Itoa(base+i) + "/",
			DataDir: filepath.Join(dir, strconv.Itoa(i)), Logger: testLogger(t)})
	}
	nodes, err := StartCluster(ctx, "test-cookie-SHAREDSECRET", opts...)
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range nodes {
		t.Cleanup(func() { _ = n.Stop() })
	}
	if _, err := StartNode(ctx, BrokerOptions{URL: nodes[0].URL(), DataDir: t.TempDir()}, ""); err == nil ||
		!strings.Contains(err.Error(), "already answers") {
		t.Fatalf("a second node on a taken port: %v", err)
	}
	status, err := nodes[0].Ctl(ctx, "cluster_status")
	if err != nil || !strings.Contains(status, nodes[1].Name()) {
		t.Fatalf("cluster_status: %v\n%s", err, status)
	}

	conn, err := amqp.Dial(nodes[0].URL())
	if err != nil {
		t.Fatal(err)
	}
	ch, err := conn.Channel()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := ch.QueueDeclare("cluster-test", true, false, false, false, amqp.Table{"x-queue-type": "quorum"}); err != nil {
		t.Fatal(err)
	}
	if err := ch.Confirm(false); err != nil {
		t.Fatal(err)
	}
	dc, err := ch.PublishWithDeferredConfirmWithContext(ctx, "", "cluster-test", false, false, amqp.Publishing{Body: []byte("kept"), DeliveryMode: amqp.Persistent})
	if err != nil {
		t.Fatal(err)
	}
	if ok, err := dc.WaitContext(ctx); !ok || err != nil {
		t.Fatalf("confirm: %v %v", ok, err)
	}
	conn.Close()

	// Crash the second node, bring it back, and read the message from it.
	if err := nodes[1].Halt(); err != nil {
		t.Fatalf("halt: %v", err)
	}
	if err := nodes[1].Start(ctx); err != nil {
		t.Fatalf("restart: %v", err)
	}
	conn, err = amqp.Dial(nodes[1].URL())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	ch, err = conn.Channel()
	if err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		msg, ok, err := ch.Get("cluster-test", true)
		if err == nil && ok {
			if string(msg.Body) != "kept" {
				t.Fatalf("got %q", msg.Body)
			}
			break
		}
		if err != nil { // the queue may still be electing a leader: a channel error closes the channel
			if ch, err = conn.Channel(); err != nil {
				t.Fatal(err)
			}
		}
		if time.Now().After(deadline) {
			t.Fatal("the message published before the crash is gone")
		}
		time.Sleep(200 * time.Millisecond)
	}
}
