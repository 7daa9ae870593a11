package runner

import (
	"context"
	"testing"
	"time"

	"github.com/scrapeplatform/platform/shared/contract"
)

func TestProcessBudgetBoundsBlockingRuns(t *testing.T) {
	t.Parallel()
	b := newProcessBudget(2)
	ctx := context.Background()
	r1, res, err := b.acquire(ctx, time.Now().Add(time.Second), time.Now())
	if err != nil || res != nil {
		t.Fatal(res, err)
	}
	r2, res, err := b.acquire(ctx, time.Now().Add(time.Second), time.Now())
	if err != nil || res != nil {
		t.Fatal(res, err)
	}
	// The third waits: until its deadline it gets a timeout result that names the budget.
	_, res, err = b.acquire(ctx, time.Now().Add(50*time.Millisecond), time.Now())
	if err != nil || res == nil || res.Status != contract.StatusTimeout || res.Err.Code != contract.CodeScriptTimeout {
		t.Fatalf("third run over a budget of 2: %+v, %v; want a timeout result", res, err)
	}
	// A slot given back is taken by a waiter.
	got := make(chan bool)
	go func() {
		release, res, err := b.acquire(ctx, time.Now().Add(time.Minute), time.Now())
		if err == nil && res == nil {
			release()
		}
		got <- err == nil && res == nil
	}()
	r1()
	if !<-got {
		t.Fatal("a waiter did not get the slot given back")
	}
	// A cancelled caller is an error, not a result.
	cctx, cancel := context.WithCancel(ctx)
	r3, _, _ := b.acquire(ctx, time.Now().Add(time.Second), time.Now())
	cancel()
	if _, res, err := b.acquire(cctx, time.Now().Add(time.Minute), time.Now()); err == nil || res != nil {
		t.Fatalf("cancelled: %+v, %v; want the context's error", res, err)
	}
	r2()
	r3()
	if nb := newProcessBudget(0); nb != nil {
		t.Fatal("a budget of 0 should be no bound")
	}
	var none *processBudget
	if release, res, err := none.acquire(ctx, time.Now(), time.Now()); err != nil || res != nil || release == nil {
		t.Fatal("no budget must never wait")
	}
}
