//go:build containers

package docker

import (
	"context"
	"fmt"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"
	"github.com/testcontainers/testcontainers-go"

	"github.com/scrapeplatform/platform/shared/broker"
)

// TestClusterLeaderContainerKilled forms a three-node RabbitMQ cluster in containers with the compose
// stack's own configuration (local/rabbitmq/rabbitmq.conf: classic peer discovery of rabbit@rabbitmq,
// rabbit@rabbitmq-2, rabbit@rabbitmq-3; one Erlang cookie), declares the platform's task queue (a quorum
// queue) with its leader on the second node, and kills that node's container (SIGKILL) during a burst of
// confirmed publishes on the first node. Every publish the broker confirmed is read back afterwards: none
// may be lost.
func TestClusterLeaderContainerKilled(t *testing.T) {
	nw := newNetwork(t)
	conf, err := filepath.Abs("../../local/rabbitmq/rabbitmq.conf")
	if err != nil {
		t.Fatal(err)
	}
	// As local/compose.yaml's x-rabbitmq-node: one cookie for the nodes and their CLI tools, the file
	// mounted as conf.d/20-scraping.conf.
	const cookie = "-setcookie scraping-platform-local-cookie"
	node := func(host string) *testcontainers.DockerContainer {
		return startBroker(t, nw, host,
			testcontainers.WithEnv(map[string]string{
				"RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS": cookie,
				"RABBITMQ_CTL_ERL_ARGS":               cookie,
			}),
			testcontainers.WithFiles(testcontainers.ContainerFile{
				HostFilePath: conf, ContainerFilePath: "/etc/rabbitmq/conf.d/20-scraping.conf", FileMode: 0o644,
			}),
		)
	}
	formed := time.Now()
	// compose starts rabbitmq-2 and rabbitmq-3 once rabbitmq is healthy; so does this, one after the other.
	nodes := []*testcontainers.DockerContainer{node("rabbitmq"), node("rabbitmq-2"), node("rabbitmq-3")}
	waitFor(t, "three running nodes", 2*time.Minute, func() bool {
		_, out := execOut(t, nodes[0], "rabbitmqctl", "-q", "cluster_status", "--formatter", "json")
		return strings.Count(jsonField(out, "running_nodes"), "rabbit@") == 3
	})
	formedIn := time.Since(formed)

	url := func(c *testcontainers.DockerContainer) string {
		ep, err := c.PortEndpoint(t.Context(), "5672/tcp", "")
		if err != nil {
			t.Fatal(err)
		}
		return "amqp://guest:guest@" + ep + "/"
	}
	// Declare the task queue from node 2, so its leader is there (client-local placement).
	const queue = "scraping_tasks"
	conn2, err := amqp.Dial(url(nodes[1]))
	if err != nil {
		t.Fatal(err)
	}
	ch2, err := conn2.Channel()
	if err != nil {
		t.Fatal(err)
	}
	if err := broker.NewTopology(queue).Declare(ch2); err != nil {
		t.Fatal(err)
	}
	conn2.Close()
	leader := queueLeader(t, nodes[0], queue)
	victim, victimName := nodes[2], "rabbit@rabbitmq-3" // a follower, should the leader have landed on node 1
	if leader == "rabbit@rabbitmq-2" {
		victim, victimName = nodes[1], leader
	}

	// The burst: confirmed publishes, one at a time, on node 1; seq → confirmed.
	conn, err := amqp.Dial(url(nodes[0]))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	ch, err := conn.Channel()
	if err != nil {
		t.Fatal(err)
	}
	if err := ch.Confirm(false); err != nil {
		t.Fatal(err)
	}
	var confirmed []int
	var confirmedAt []time.Time
	stop := make(chan struct{})
	done := make(chan struct{})
	unconfirmed := 0
	go func() {
		defer close(done)
		for seq := 0; ; seq++ {
			select {
			case <-stop:
				return
			default:
			}
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			dc, err := ch.PublishWithDeferredConfirmWithContext(ctx, "", queue, false, false,
				amqp.Publishing{DeliveryMode: amqp.Persistent, Body: []byte(strconv.Itoa(seq))})
			if err == nil {
				if ok, werr := dc.WaitContext(ctx); ok && werr == nil {
					confirmed = append(confirmed, seq)
					confirmedAt = append(confirmedAt, time.Now())
				} else {
					unconfirmed++
				}
			} else {
				unconfirmed++
			}
			cancel()
			time.Sleep(2 * time.Millisecond)
		}
	}()
	time.Sleep(3 * time.Second)
	killedAt := time.Now()
	zero := time.Duration(0)
	if err := victim.Stop(context.Background(), &zero); err != nil { // SIGKILL at once
		t.Fatalf("kill %s: %v", victimName, err)
	}
	time.Sleep(8 * time.Second)
	close(stop)
	<-done

	// The longest pause between two confirms around the kill: the failover as a publisher sees it.
	var gap time.Duration
	for i := 1; i < len(confirmedAt); i++ {
		if confirmedAt[i].After(killedAt) && confirmedAt[i-1].Before(killedAt.Add(5*time.Second)) {
			gap = max(gap, confirmedAt[i].Sub(confirmedAt[i-1]))
		}
	}
	afterKill := 0
	for _, at := range confirmedAt {
		if at.After(killedAt) {
			afterKill++
		}
	}
	if afterKill == 0 {
		t.Errorf("no publish was confirmed after %s was killed", victimName)
	}

	// Read the queue back from node 1.
	got := map[int]bool{}
	for quiet := 0; quiet < 20; {
		d, ok, err := ch.Get(queue, true)
		if err != nil {
			t.Fatal(err)
		}
		if !ok {
			quiet++
			time.Sleep(50 * time.Millisecond)
			continue
		}
		n, _ := strconv.Atoi(string(d.Body))
		got[n] = true
	}
	lost := 0
	for _, seq := range confirmed {
		if !got[seq] {
			lost++
		}
	}
	if lost > 0 {
		t.Errorf("%d of %d confirmed publishes are gone", lost, len(confirmed))
	}
	newLeader := queueLeader(t, nodes[0], queue)
	if newLeader == victimName {
		t.Errorf("the queue is still led by the killed node %s", victimName)
	}
	t.Logf("cluster in containers: formed in %s; leader %s killed (%s); new leader %s; %d confirmed (%d after the kill), %d unconfirmed, %d read back, %d lost; longest confirm gap around the kill %s",
		formedIn.Round(time.Millisecond), leader, victimName, newLeader, len(confirmed), afterKill, unconfirmed, len(got), lost, gap.Round(time.Millisecond))
}

// queueLeader asks node which node leads queue.
func queueLeader(t *testing.T, node *testcontainers.DockerContainer, queue string) string {
	t.Helper()
	leader := ""
	waitFor(t, "a leader of "+queue, time.Minute, func() bool {
		_, out := execOut(t, node, "rabbitmqctl", "-q", "list_queues", "name", "leader")
		for _, line := range strings.Split(out, "\n") {
			if f := strings.Fields(line); len(f) == 2 && f[0] == queue && strings.HasPrefix(f[1], "rabbit@") {
				leader = f[1]
				return true
			}
		}
		return false
	})
	return leader
}

// jsonField returns the text of "key": [...] in out, roughly: enough to count the nodes in it.
func jsonField(out, key string) string {
	_, after, ok := strings.Cut(out, fmt.Sprintf("%q", key))
	if !ok {
		return ""
	}
	list, _, _ := strings.Cut(after, "]")
	return list
}
