package observability

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"net/http"
	"net/url"
	"os/exec"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"
)

// promAPI talks to a Prometheus server's HTTP API (v1).
type promAPI struct {
	base   string
	client *http.Client
}

func newPromAPI(base string) *promAPI {
	return &promAPI{base: base, client: &http.Client{Timeout: 10 * time.Second}}
}

// sample is one series of an instant query's answer.
type sample struct {
	Metric map[string]string
	Value  float64
}

func (s sample) String() string {
	keys := make([]string, 0, len(s.Metric))
	for k := range s.Metric {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var b strings.Builder
	b.WriteString("{")
	for i, k := range keys {
		if i > 0 {
			b.WriteString(", ")
		}
		fmt.Fprintf(&b, "%s=%q", k, s.Metric[k])
	}
	fmt.Fprintf(&b, "} %g", s.Value)
	return b.String()
}

func (p *promAPI) get(ctx context.Context, path string, params url.Values, data any) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, p.base+path+"?"+params.Encode(), nil)
	if err != nil {
		return err
	}
	resp, err := p.client.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return err
	}
	var env struct {
		Status    string          `json:"status"`
		Data      json.RawMessage `json:"data"`
		ErrorType string          `json:"errorType"`
		Error     string          `json:"error"`
	}
	if err := json.Unmarshal(body, &env); err != nil {
		return fmt.Errorf("GET %s: %s: not JSON: %.200s", path, resp.Status, body)
	}
	if env.Status != "success" {
		return fmt.Errorf("GET %s: %s: %s", path, env.ErrorType, env.Error)
	}
	return json.Unmarshal(env.Data, data)
}

// query evaluates expr now (an instant query) and returns its samples. A scalar answer is one sample
// without labels.
func (p *promAPI) query(ctx context.Context, expr string) ([]sample, error) {
	var data struct {
		ResultType string          `json:"resultType"`
		Result     json.RawMessage `json:"result"`
	}
	if err := p.get(ctx, "/api/v1/query", url.Values{"query": {expr}}, &data); err != nil {
		return nil, err
	}
	parse := func(v [2]any) (float64, error) {
		s, _ := v[1].(string)
		return strconv.ParseFloat(s, 64) // accepts NaN and ±Inf as Prometheus writes them
	}
	switch data.ResultType {
	case "vector":
		var vec []struct {
			Metric map[string]string `json:"metric"`
			Value  [2]any            `json:"value"`
		}
		if err := json.Unmarshal(data.Result, &vec); err != nil {
			return nil, err
		}
		out := make([]sample, 0, len(vec))
		for _, v := range vec {
			f, err := parse(v.Value)
			if err != nil {
				return nil, err
			}
			out = append(out, sample{Metric: v.Metric, Value: f})
		}
		return out, nil
	case "scalar":
		var v [2]any
		if err := json.Unmarshal(data.Result, &v); err != nil {
			return nil, err
		}
		f, err := parse(v)
		return []sample{{Value: f}}, err
	default:
		return nil, fmt.Errorf("query %q: result type %s, want vector or scalar", expr, data.ResultType)
	}
}

// alert is one entry of GET /api/v1/alerts.
type alert struct {
	Labels map[string]string `json:"labels"`
	State  string            `json:"state"`
	Value  string            `json:"value"`
}

func (p *promAPI) alerts(ctx context.Context) ([]alert, error) {
	var data struct {
		Alerts []alert `json:"alerts"`
	}
	err := p.get(ctx, "/api/v1/alerts", nil, &data)
	return data.Alerts, err
}

// labelValues returns the values of label on the series matching match.
func (p *promAPI) labelValues(ctx context.Context, label, match string) ([]string, error) {
	var vals []string
	err := p.get(ctx, "/api/v1/label/"+label+"/values", url.Values{"match[]": {match}}, &vals)
	return vals, err
}

// waitFiring polls until alert name fires with labels including want, and returns it.
func (p *promAPI) waitFiring(t *testing.T, name string, want map[string]string, timeout time.Duration) alert {
	t.Helper()
	deadline := time.Now().Add(timeout)
	var last []alert
	for {
		alerts, err := p.alerts(t.Context())
		if err != nil {
			t.Fatalf("list alerts: %v", err)
		}
		last = alerts
		for _, a := range alerts {
			if a.Labels["alertname"] == name && a.State == "firing" && hasLabels(a.Labels, want) {
				return a
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("alert %s%v did not fire within %s; alerts now: %+v", name, want, timeout, last)
		}
		time.Sleep(250 * time.Millisecond)
	}
}

func hasLabels(have, want map[string]string) bool {
	for k, v := range want {
		if have[k] != v {
			return false
		}
	}
	return true
}

// waitQuery polls expr until ok accepts its samples.
func (p *promAPI) waitQuery(t *testing.T, expr string, timeout time.Duration, ok func([]sample) bool) []sample {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		s, err := p.query(t.Context(), expr)
		if err != nil {
			t.Fatalf("query %s: %v", expr, err)
		}
		if ok(s) {
			return s
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: still %v after %s", expr, s, timeout)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// finite reports whether any sample has a value other than NaN or ±Inf.
func finite(samples []sample) bool {
	for _, s := range samples {
		if !math.IsNaN(s.Value) && !math.IsInf(s.Value, 0) {
			return true
		}
	}
	return false
}

// promtool runs `promtool check <what> <files...>` and fails t with its output when it does not pass.
func promtool(t *testing.T, what string, files ...string) {
	t.Helper()
	bin, err := exec.LookPath("promtool")
	if err != nil {
		t.Fatalf("promtool (from the prometheus package: apt-get install prometheus; .ci/run installs it) is needed: %v", err)
	}
	out, err := exec.Command(bin, append([]string{"check", what}, files...)...).CombinedOutput()
	if err != nil {
		t.Fatalf("promtool check %s %s: %v\n%s", what, strings.Join(files, " "), err, out)
	}
}
