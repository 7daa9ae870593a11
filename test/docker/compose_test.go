//go:build containers

package docker

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/compose-spec/compose-go/v2/loader"
	"github.com/compose-spec/compose-go/v2/types"
	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/api/types/mount"
	"github.com/moby/moby/client"
	"github.com/testcontainers/testcontainers-go"
	"github.com/testcontainers/testcontainers-go/network"
)

// TestComposeStack brings up local/compose.yaml as it is — read by compose-go, the loader `docker compose`
// itself uses — through the Docker API (testcontainers-go): every service in the order of its depends_on
// conditions (healthy, completed successfully), with its image, entrypoint, command, user, environment,
// health check, bind mounts, named volumes and replicas (two workers). What differs from `docker compose up`:
// the services share a user-defined bridge of this test (service names as aliases), named volumes get a
// prefix of this test, and only the gateway's and Prometheus's ports are published, on free loopback ports
// (the file's fixed ones would clash with a broker on this machine). Grafana runs where its image exists
// (no Debian stand-in: it is skipped, and the test says so).
//
// The compose file's one script repository mode is s3 (s3-seed publishes scripts/ into versitygw): a scrape
// of example_scraper fetches the bundled demo page from a container of this test (EGRESS_ALLOW names it, as
// `make demo` does). Then Prometheus must scrape every target: the gateway, both workers, three RabbitMQ
// nodes twice (rabbitmq and rabbitmq_queues).
func TestComposeStack(t *testing.T) {
	ctx := t.Context()
	project := loadComposeProject(t, map[string]string{"JWT_SECRET": jwtSecret})
	nw := newNetwork(t)
	prefix := "composetest-" + randomHex(4) + "-"
	provider, err := testcontainers.NewDockerProvider()
	if err != nil {
		t.Fatal(err)
	}
	defer provider.Close()
	docker := provider.Client()
	t.Cleanup(func() {
		for name := range project.Volumes {
			if _, err := docker.VolumeRemove(context.Background(), prefix+name, client.VolumeRemoveOptions{Force: true}); err != nil {
				t.Logf("remove volume %s: %v", prefix+name, err)
			}
		}
	})

	// The demo page the scrape fetches; the workers may reach it (a private address otherwise refused).
	demo, err := filepath.Abs("../../local/demo")
	if err != nil {
		t.Fatal(err)
	}
	run(t, "python:3.12-slim-bookworm",
		network.WithNetwork([]string{"demo"}, nw),
		testcontainers.WithCmd("python3", "-m", "http.server", "8765", "--directory", "/demo"),
		testcontainers.WithHostConfigModifier(func(hc *container.HostConfig) { hc.Binds = []string{demo + ":/demo:ro"} }),
	)
	if w, ok := project.Services["worker"]; ok {
		allow := "demo:8765"
		w.Environment["EGRESS_ALLOW"] = &allow
		project.Services["worker"] = w
	}

	started := map[string][]*testcontainers.DockerContainer{}
	skipped := map[string]string{}
	begin := time.Now()
	for _, name := range startOrder(t, project) {
		s := project.Services[name]
		for dep, d := range s.DependsOn {
			if reason, ok := skipped[dep]; ok {
				t.Fatalf("%s depends on %s, which was skipped (%s)", name, dep, reason)
			}
			for _, c := range started[dep] {
				awaitCondition(t, dep, c, d.Condition)
			}
		}
		if _, err := docker.ImageInspect(ctx, s.Image); err != nil {
			if name == "grafana" {
				skipped[name] = fmt.Sprintf("image %s: %v", s.Image, err)
				t.Logf("SKIPPED grafana: no image %s here (no registry, no Debian package to build a stand-in from)", s.Image)
				continue
			}
			t.Fatalf("%s: image %s: %v (make base-images images PREBUILT=1)", name, s.Image, err)
		}
		replicas := 1
		if s.Deploy != nil && s.Deploy.Replicas != nil {
			replicas = *s.Deploy.Replicas
		}
		for range replicas {
			started[name] = append(started[name], run(t, s.Image, serviceOptions(t, s, nw, prefix)...))
		}
	}
	// Everything up: every one-shot finished with 0, every service with a health check (the compose file's
	// or its image's: the gateway, the workers) healthy.
	for name, cs := range started {
		s := project.Services[name]
		for _, c := range cs {
			if s.Restart == types.RestartPolicyNo {
				awaitCondition(t, name, c, types.ServiceConditionCompletedSuccessfully)
				continue
			}
			st, err := c.State(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if st.Health != nil {
				awaitCondition(t, name, c, types.ServiceConditionHealthy)
			}
		}
	}
	upIn := time.Since(begin)

	gateway := endpoint(t, started["gateway"][0], "8080/tcp")
	resp, err := http.Get(gateway + "/health")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("GET /health: %d", resp.StatusCode)
	}

	// The s3 repository (the compose file's only mode): a script s3-seed published, run by a worker.
	r := scrape(t, gateway, "example_scraper", map[string]any{"url": "http://demo:8765/index.html"}, 30)
	var page struct {
		Title      string `json:"title"`
		StatusCode int    `json:"status_code"`
	}
	if r.code != 200 || r.Status != "completed" {
		t.Fatalf("example_scraper from the s3 repository: %d %s %s %s", r.code, r.Status, r.Code, r.Error)
	}
	mustJSON(t, r.Data, &page)
	if page.StatusCode != 200 || !strings.Contains(page.Title, "demo page") {
		t.Errorf("example_scraper: status %d, title %q, want 200 and the demo page's title", page.StatusCode, page.Title)
	}

	// The job store (the s3 service's second bucket, shared by the gateway and the workers): a scrape
	// answered at once with 202 runs as a job, and GET /jobs/{id} returns its result.
	job := scrapeAsync(t, gateway, "example_scraper", map[string]any{"url": "http://demo:8765/index.html"}, 30)
	var jobPage struct {
		Title string `json:"title"`
	}
	mustJSON(t, job.Data, &jobPage)
	if jobPage.Title != page.Title {
		t.Errorf("the job's result has title %q, the sync scrape's %q", jobPage.Title, page.Title)
	}

	// GET /status reads the management API as the monitoring user: the scrapes in flight and the workers'
	// admission capacity beside active_workers.
	st := status(t, gateway)
	if st.ActiveWorkers != len(started["worker"]) || st.InFlight == nil || st.Capacity == nil || *st.Capacity < 1 {
		t.Errorf("GET /status: active_workers %d (want %d), in_flight %v, capacity %v (want both, capacity at least 1)",
			st.ActiveWorkers, len(started["worker"]), st.InFlight, st.Capacity)
	}

	// Prometheus scrapes every target: per job, how many and all up.
	prom := endpoint(t, started["prometheus"][0], "9090/tcp")
	want := map[string]int{"gateway": 1, "worker": len(started["worker"]), "rabbitmq": 3, "rabbitmq_queues": 3}
	var last map[string][]string
	waitFor(t, "Prometheus to scrape every target up", 3*time.Minute, func() bool {
		last = promTargets(t, prom)
		for job, n := range want {
			up := 0
			for _, h := range last[job] {
				if h == "up" {
					up++
				}
			}
			if up != n || len(last[job]) != n {
				return false
			}
		}
		return true
	})
	grafana := "skipped (no image)"
	if cs, ok := started["grafana"]; ok {
		g := endpoint(t, cs[0], "3000/tcp")
		resp, err := http.Get(g + "/api/health")
		if err != nil || resp.StatusCode != 200 {
			t.Errorf("Grafana /api/health: %v %v", resp, err)
		}
		grafana = "healthy"
	}
	t.Logf("compose stack: %d services up in %s (%d workers); /health 200; example_scraper from s3: %q, and as a job; /status capacity %d; Prometheus targets %v all up; Grafana %s",
		len(started), upIn.Round(time.Second), len(started["worker"]), page.Title, *st.Capacity, last, grafana)
}

// scrapeAsync posts a scrape with Prefer: respond-async, which must be answered 202 with the job's Location,
// and long-polls that until the job has ended; it must have completed.
func scrapeAsync(t *testing.T, gateway, script string, params map[string]any, timeout int) reply {
	t.Helper()
	token := testToken(t)
	resp := postScrape(t, gateway, script, params, timeout, "respond-async")
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	loc := resp.Header.Get("Location")
	if resp.StatusCode != http.StatusAccepted || !strings.HasPrefix(loc, "/jobs/") {
		t.Fatalf("POST /scrape %s (respond-async): %d, Location %q, %s; want 202 and /jobs/{id}", script, resp.StatusCode, loc, b)
	}
	var r reply
	waitFor(t, "job "+loc+" to end", 2*time.Minute, func() bool {
		req, _ := http.NewRequestWithContext(t.Context(), http.MethodGet, gateway+loc+"?wait=10", nil)
		req.Header.Set("Authorization", "Bearer "+token)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatalf("GET %s: %v", loc, err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		r = reply{code: resp.StatusCode, raw: string(b)}
		if err := json.Unmarshal(b, &r); err != nil || resp.StatusCode != http.StatusOK {
			t.Fatalf("GET %s: %d %s (%v)", loc, resp.StatusCode, b, err)
		}
		return r.Status != "queued" && r.Status != "running"
	})
	t.Logf("job %s: %s", loc, truncate(r.raw, 300))
	if r.Status != "completed" {
		t.Fatalf("job %s of %s: %s %s %s", loc, script, r.Status, r.Code, r.Error)
	}
	return r
}

// statusBody is the part of GET /status's answer the tests read.
type statusBody struct {
	ActiveWorkers int  `json:"active_workers"`
	InFlight      *int `json:"in_flight"`
	Capacity      *int `json:"capacity"`
}

// status gets GET /status (public, without a token).
func status(t *testing.T, gateway string) statusBody {
	t.Helper()
	resp, err := http.Get(gateway + "/status")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	var st statusBody
	if err := json.Unmarshal(b, &st); err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("GET /status: %d %s (%v)", resp.StatusCode, b, err)
	}
	t.Logf("GET /status: %s", truncate(string(b), 300))
	return st
}

// loadComposeProject reads local/compose.yaml with compose-go, with env as the only environment.
func loadComposeProject(t *testing.T, env map[string]string) *types.Project {
	t.Helper()
	file, err := filepath.Abs("../../local/compose.yaml")
	if err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	p, err := loader.LoadWithContext(t.Context(), types.ConfigDetails{
		WorkingDir:  filepath.Dir(file),
		ConfigFiles: []types.ConfigFile{{Filename: file, Content: b}},
		Environment: types.NewMapping(nil).Merge(env),
	})
	if err != nil {
		t.Fatalf("%s: %v", file, err)
	}
	return p
}

// startOrder sorts the services so that each comes after what it depends on.
func startOrder(t *testing.T, p *types.Project) []string {
	t.Helper()
	var order []string
	done := map[string]bool{}
	for len(order) < len(p.Services) {
		progress := false
		for _, name := range p.ServiceNames() {
			if done[name] {
				continue
			}
			ready := true
			for dep := range p.Services[name].DependsOn {
				ready = ready && done[dep]
			}
			if ready {
				order, done[name], progress = append(order, name), true, true
			}
		}
		if !progress {
			t.Fatalf("depends_on has a cycle among %v", p.ServiceNames())
		}
	}
	return order
}

// serviceOptions turns a compose service into the container settings `docker compose` would give it.
func serviceOptions(t *testing.T, s types.ServiceConfig, nw *testcontainers.DockerNetwork, volumePrefix string) []testcontainers.ContainerCustomizer {
	t.Helper()
	env := map[string]string{}
	for k, v := range s.Environment {
		if v != nil {
			env[k] = *v
		}
	}
	var mounts []mount.Mount
	for _, v := range s.Volumes {
		switch v.Type {
		case types.VolumeTypeBind:
			mounts = append(mounts, mount.Mount{Type: mount.TypeBind, Source: v.Source, Target: v.Target, ReadOnly: v.ReadOnly})
		case types.VolumeTypeVolume:
			mounts = append(mounts, mount.Mount{Type: mount.TypeVolume, Source: volumePrefix + v.Source, Target: v.Target, ReadOnly: v.ReadOnly})
		default:
			t.Fatalf("%s: volume type %s not handled here", s.Name, v.Type)
		}
	}
	opts := []testcontainers.ContainerCustomizer{
		network.WithNetwork([]string{s.Name}, nw),
		testcontainers.WithEnv(env),
		testcontainers.WithConfigModifier(func(c *container.Config) {
			c.Hostname = s.Hostname
			c.User = s.User
			if s.Entrypoint != nil {
				c.Entrypoint = s.Entrypoint
			}
			if s.Command != nil {
				c.Cmd = s.Command
			}
			if h := s.HealthCheck; h != nil && !h.Disable {
				hc := &container.HealthConfig{Test: h.Test}
				if h.Interval != nil {
					hc.Interval = time.Duration(*h.Interval)
				}
				if h.Timeout != nil {
					hc.Timeout = time.Duration(*h.Timeout)
				}
				if h.StartPeriod != nil {
					hc.StartPeriod = time.Duration(*h.StartPeriod)
				}
				if h.Retries != nil {
					hc.Retries = int(*h.Retries)
				}
				c.Healthcheck = hc
			}
		}),
		testcontainers.WithHostConfigModifier(func(hc *container.HostConfig) { hc.Mounts = mounts }),
	}
	switch s.Name {
	case "gateway":
		opts = append(opts, loopbackPorts("8080/tcp"))
	case "prometheus":
		opts = append(opts, loopbackPorts("9090/tcp"))
	case "grafana":
		opts = append(opts, loopbackPorts("3000/tcp"))
	}
	return opts
}

// awaitCondition waits until c (of service name) meets a depends_on condition.
func awaitCondition(t *testing.T, name string, c *testcontainers.DockerContainer, condition string) {
	t.Helper()
	if condition == types.ServiceConditionStarted || condition == "" {
		return
	}
	waitFor(t, name+" to be "+condition, 4*time.Minute, func() bool {
		st, err := c.State(context.Background())
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		switch condition {
		case types.ServiceConditionHealthy:
			if st.Status == container.StateExited || st.Status == container.StateDead {
				t.Fatalf("%s exited (%d) before it was healthy:\n%s", name, st.ExitCode, containerLog(c))
			}
			return st.Health != nil && st.Health.Status == container.Healthy
		case types.ServiceConditionCompletedSuccessfully:
			if st.Status == container.StateExited && st.ExitCode != 0 {
				t.Fatalf("%s exited with %d:\n%s", name, st.ExitCode, containerLog(c))
			}
			return st.Status == container.StateExited
		default:
			t.Fatalf("%s: depends_on condition %q not handled here", name, condition)
			return false
		}
	})
}

func endpoint(t *testing.T, c *testcontainers.DockerContainer, port string) string {
	t.Helper()
	ep, err := c.PortEndpoint(t.Context(), port, "http")
	if err != nil {
		t.Fatal(err)
	}
	return ep
}

// promTargets returns each job's active targets' health ("up", "down", "unknown").
func promTargets(t *testing.T, prom string) map[string][]string {
	t.Helper()
	resp, err := http.Get(prom + "/api/v1/targets?state=active")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var body struct {
		Data struct {
			ActiveTargets []struct {
				ScrapePool string `json:"scrapePool"`
				Health     string `json:"health"`
			} `json:"activeTargets"`
		} `json:"data"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&body); err != nil {
		t.Fatal(err)
	}
	m := map[string][]string{}
	for _, a := range body.Data.ActiveTargets {
		m[a.ScrapePool] = append(m[a.ScrapePool], a.Health)
	}
	return m
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}
