package job

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/scrapeplatform/platform/shared/s3test"
)

// getByList is the alternative read the package documentation weighs against Get's cascade: one LIST of
// the job's prefix, then one GET of its most advanced event object.
func (s *S3) getByList(ctx context.Context, id, owner string) (Job, error) {
	o := s.objs.(*s3Objects)
	prefix := o.prefix + "jobs/" + id + "/"
	out, err := o.client.ListObjectsV2(ctx, &s3.ListObjectsV2Input{Bucket: &o.bucket, Prefix: &prefix})
	if err != nil {
		return Job{}, err
	}
	have := map[string]bool{}
	for _, obj := range out.Contents {
		have[strings.TrimSuffix(strings.TrimPrefix(*obj.Key, prefix), ".json")] = true
	}
	for _, event := range []string{eventFinal, eventRunning, eventQueued} {
		if !have[event] {
			continue
		}
		data, _, _, err := o.get(ctx, eventKey(id, event))
		if err != nil {
			return Job{}, err
		}
		var j Job
		if err := json.Unmarshal(data, &j); err != nil {
			return Job{}, err
		}
		if !j.visibleTo(owner, s.retention, s.now()) {
			return Job{}, ErrNotFound
		}
		return j, nil
	}
	return Job{}, ErrNotFound
}

// BenchmarkGet compares Get's cascade of GETs (final, running, queued) with one LIST plus one GET, for a
// queued job (the cascade's worst case: two 404s first), a running one and a finished one (its best case),
// on versitygw.
func BenchmarkGet(b *testing.B) {
	server := s3test.Start(b)
	server.CreateBucket(b, "bench", false)
	cfg, err := Load(server.Getenv("JOB_STORE_BUCKET=bench"))
	if err != nil {
		b.Fatal(err)
	}
	ctx := context.Background()
	s, err := NewS3(ctx, cfg)
	if err != nil {
		b.Fatal(err)
	}
	q := queued("bench-queued", "alice", time.Now())
	r := queued("bench-running", "alice", time.Now())
	f := queued("bench-final", "alice", time.Now())
	for _, j := range []Job{q, r, f} {
		if err := s.Create(ctx, j); err != nil {
			b.Fatal(err)
		}
	}
	for _, j := range []Job{r, f} {
		if err := s.Start(ctx, running(j, "w", time.Now())); err != nil {
			b.Fatal(err)
		}
	}
	if _, _, err := s.Finish(ctx, completed(running(f, "w", time.Now()), `{"a":1}`, time.Now())); err != nil {
		b.Fatal(err)
	}
	for _, id := range []string{"bench-queued", "bench-running", "bench-final"} {
		b.Run("cascade/"+id, func(b *testing.B) {
			for b.Loop() {
				if _, err := s.Get(ctx, id, "alice"); err != nil {
					b.Fatal(err)
				}
			}
		})
		b.Run("list/"+id, func(b *testing.B) {
			for b.Loop() {
				if _, err := s.getByList(ctx, id, "alice"); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
