package job_test

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/scrapeplatform/platform/shared/job"
)

// A job's life as the gateway and a worker record it; a cancel that comes after the worker finished
// changes nothing.
func Example() {
	ctx := context.Background()
	store := job.NewMemory(job.DefaultRetention, nil) // job.NewS3(ctx, cfg) in production
	now := time.Now()

	// Gateway: bind the Idempotency-Key, then record the job.
	body := []byte(`{"script_name":"example","parameters":{}}`)
	id, existed, _ := store.Claim(ctx, "client-1", "order-42", job.BodyHash(body), "req-1")
	fmt.Println(id, existed)
	_ = store.Create(ctx, job.Job{RequestID: id, Owner: "client-1", ScriptName: "example", Status: job.StatusQueued, CreatedAt: now})

	// Worker: start, run, finish.
	j := job.Job{RequestID: id, Owner: "client-1", ScriptName: "example", Status: job.StatusRunning, CreatedAt: now, StartedAt: now, WorkerID: "w-1"}
	_ = store.Start(ctx, j)
	j.Status, j.FinishedAt = job.StatusCompleted, now.Add(time.Second)
	j.Result = &job.Result{Data: []byte(`{"title":"Example"}`), Size: 19}
	_, won, _ := store.Finish(ctx, j)
	fmt.Println("worker's final state recorded:", won)

	// Client: a late cancel, a read, and another client's read.
	got, _ := store.Cancel(ctx, id, "client-1", now.Add(2*time.Second))
	fmt.Println(got.Status, string(got.Result.Data))
	_, err := store.Get(ctx, id, "client-2")
	fmt.Println(errors.Is(err, job.ErrNotFound))
	// Output:
	// req-1 false
	// worker's final state recorded: true
	// completed {"title":"Example"}
	// true
}
