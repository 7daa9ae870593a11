package lambdaedge

import (
	"encoding/json"
	"io"
	"strconv"
	"sync"
	"time"

	"github.com/scrapeplatform/platform/functions/gateway"
	"github.com/scrapeplatform/platform/shared/contract"
)

var _ gateway.Recorder = (*EMF)(nil)

// EMF writes metrics as CloudWatch Embedded Metric Format lines (one JSON object per line) to w — in
// Lambda, stdout, from where CloudWatch Logs extracts them into metrics without any API call.
//
// Metrics (namespace configurable, default ScrapingPlatform; every one also has the Stage dimension):
//
//	Scrapes         Count         dimensions [Stage], [Stage, Outcome]
//	ScrapeDuration  Milliseconds  dimensions [Stage], [Stage, Outcome]
//	HTTPRequests    Count         dimensions [Stage], [Stage, Route, StatusClass]
//	RepliesDropped  Count         dimensions [Stage, Reason]
//	JobsAccepted    Count         dimensions [Stage, Mode] (sync: 200 within the window; async: 202)
type EMF struct {
	w         io.Writer
	namespace string
	stage     string
	now       func() time.Time
	mu        sync.Mutex
}

// NewEMF returns an EMF recorder writing to w.
func NewEMF(w io.Writer, namespace, stage string) *EMF {
	return &EMF{w: w, namespace: namespace, stage: stage, now: time.Now}
}

type emfMetric struct {
	Name string `json:"Name"`
	Unit string `json:"Unit"`
}

type emfDirective struct {
	Namespace  string      `json:"Namespace"`
	Dimensions [][]string  `json:"Dimensions"`
	Metrics    []emfMetric `json:"Metrics"`
}

func (e *EMF) emit(dims [][]string, metrics []emfMetric, values map[string]any) {
	doc := map[string]any{
		"_aws": map[string]any{
			"Timestamp":         e.now().UnixMilli(),
			"CloudWatchMetrics": []emfDirective{{Namespace: e.namespace, Dimensions: dims, Metrics: metrics}},
		},
		"Stage": e.stage,
	}
	for k, v := range values {
		doc[k] = v
	}
	b, err := json.Marshal(doc)
	if err != nil {
		return
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	_, _ = e.w.Write(append(b, '\n'))
}

// ObserveScrape implements gateway.Recorder.
func (e *EMF) ObserveScrape(outcome contract.Status, d time.Duration) {
	e.emit([][]string{{"Stage"}, {"Stage", "Outcome"}},
		[]emfMetric{{"Scrapes", "Count"}, {"ScrapeDuration", "Milliseconds"}},
		map[string]any{"Outcome": string(outcome), "Scrapes": 1, "ScrapeDuration": float64(d.Microseconds()) / 1000})
}

// ObserveHTTP implements gateway.Recorder.
func (e *EMF) ObserveHTTP(route string, code int, _ time.Duration) {
	e.emit([][]string{{"Stage"}, {"Stage", "Route", "StatusClass"}},
		[]emfMetric{{"HTTPRequests", "Count"}},
		map[string]any{"Route": route, "StatusClass": strconv.Itoa(code/100) + "xx", "HTTPRequests": 1})
}

// ReplyDropped implements gateway.Recorder.
func (e *EMF) ReplyDropped(reason string) {
	e.emit([][]string{{"Stage", "Reason"}}, []emfMetric{{"RepliesDropped", "Count"}},
		map[string]any{"Reason": reason, "RepliesDropped": 1})
}

// JobAccepted implements gateway.Recorder.
func (e *EMF) JobAccepted(mode string) {
	e.emit([][]string{{"Stage", "Mode"}}, []emfMetric{{"JobsAccepted", "Count"}},
		map[string]any{"Mode": mode, "JobsAccepted": 1})
}
