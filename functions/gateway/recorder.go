package gateway

import (
	"time"

	"github.com/scrapeplatform/platform/shared/contract"
)

// Recorder receives the gateway's metrics: the handler calls it, the edges implement it (Prometheus in
// localedge, CloudWatch EMF in lambdaedge). A nil Recorder in Options records nothing.
type Recorder interface {
	ObserveHTTP(route string, code int, d time.Duration)
	ObserveScrape(outcome contract.Status, d time.Duration)
	ReplyDropped(reason string)
	// JobAccepted counts a scrape recorded as a job by how it was answered: ModeSync (200 within the sync
	// window) or ModeAsync (202).
	JobAccepted(mode string)
}

var _ Recorder = nopRecorder{}

type nopRecorder struct{}

func (nopRecorder) ObserveHTTP(string, int, time.Duration)       {}
func (nopRecorder) ObserveScrape(contract.Status, time.Duration) {}
func (nopRecorder) ReplyDropped(string)                          {}
func (nopRecorder) JobAccepted(string)                           {}
