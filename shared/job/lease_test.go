package job

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/scrapeplatform/platform/shared/s3test"
)

type leaseStore interface {
	RenewLease(ctx context.Context, id string, l Lease) error
	GetLease(ctx context.Context, id string) (Lease, bool, error)
}

func testLease(t *testing.T, s leaseStore) {
	ctx := context.Background()
	if _, found, err := s.GetLease(ctx, "req-lease"); err != nil || found {
		t.Fatalf("lease of a job without one: found %v, %v", found, err)
	}
	until := time.Date(2026, 12, 5, 10, 0, 0, 0, time.UTC)
	for i, w := range []string{"w1", "w2"} {
		l := Lease{WorkerID: w, Until: until.Add(time.Duration(i) * time.Minute)}
		if err := s.RenewLease(ctx, "req-lease", l); err != nil {
			t.Fatal(err)
		}
		got, found, err := s.GetLease(ctx, "req-lease")
		if err != nil || !found || got.WorkerID != w || !got.Until.Equal(l.Until) {
			t.Fatalf("renewal %d: got %+v, %v, %v; want %+v", i, got, found, err, l)
		}
	}
	if err := s.RenewLease(ctx, "bad/id", Lease{Until: until}); !errors.Is(err, ErrInvalid) {
		t.Errorf("lease of a bad id: %v, want ErrInvalid", err)
	}
	if err := s.RenewLease(ctx, "req-lease", Lease{WorkerID: "w"}); !errors.Is(err, ErrInvalid) {
		t.Errorf("lease without an end: %v, want ErrInvalid", err)
	}
}

func TestLeaseMemory(t *testing.T) { testLease(t, NewMemory(0, nil)) }

func TestLeaseS3(t *testing.T) {
	server := s3test.Start(t)
	testLease(t, newS3Store(t, server, nil))
}
