package telemetry

import (
	"strconv"
	"sync"
	"testing"
)

func TestClientLabelsAreCapped(t *testing.T) {
	t.Parallel()
	c := NewClientLabels(3)
	for i := range 3 {
		if got := c.Label("client-" + strconv.Itoa(i)); got != "client-"+strconv.Itoa(i) {
			t.Fatalf("client %d labelled %q", i, got)
		}
	}
	if got := c.Label("client-9"); got != OtherClient {
		t.Fatalf("a fourth client is labelled %q, want %q", got, OtherClient)
	}
	if got := c.Label("client-1"); got != "client-1" {
		t.Fatalf("a known client lost its label: %q", got)
	}
	if got := c.Label(""); got != OtherClient {
		t.Fatalf("no owner is labelled %q", got)
	}
	if got := NewClientLabels(0).Label("x"); got != OtherClient {
		t.Fatalf("cap 0 labels %q", got)
	}
	// Concurrent first uses never exceed the cap.
	d := NewClientLabels(DefaultMaxClients)
	var wg sync.WaitGroup
	distinct := sync.Map{}
	for i := range 200 {
		wg.Go(func() { distinct.Store(d.Label("c"+strconv.Itoa(i)), true) })
	}
	wg.Wait()
	n := 0
	distinct.Range(func(k, _ any) bool {
		if k != OtherClient {
			n++
		}
		return true
	})
	if n != DefaultMaxClients {
		t.Fatalf("%d distinct labels, want the cap %d", n, DefaultMaxClients)
	}
}
