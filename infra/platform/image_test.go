package platform

import (
	"bufio"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// workerAsset returns the staged build context of the worker image in the cloud assembly, checking that
// the manifest builds it from worker/Dockerfile for linux/amd64.
func workerAsset(t *testing.T) string {
	t.Helper()
	a := synth(t)
	raw, err := os.ReadFile(filepath.Join(a.outdir, StackName("dev")+".assets.json"))
	if err != nil {
		t.Fatal(err)
	}
	var manifest struct {
		DockerImages map[string]struct {
			Source struct {
				Directory  string `json:"directory"`
				DockerFile string `json:"dockerFile"`
				Platform   string `json:"platform"`
			} `json:"source"`
		} `json:"dockerImages"`
	}
	if err := json.Unmarshal(raw, &manifest); err != nil {
		t.Fatal(err)
	}
	if len(manifest.DockerImages) != 1 {
		t.Fatalf("want one Docker image asset, found %d", len(manifest.DockerImages))
	}
	for _, img := range manifest.DockerImages {
		if img.Source.DockerFile != WorkerDockerfile || img.Source.Platform != "linux/amd64" {
			t.Fatalf("image asset built from %q for %q, want %s for linux/amd64", img.Source.DockerFile, img.Source.Platform, WorkerDockerfile)
		}
		return filepath.Join(a.outdir, img.Source.Directory)
	}
	return ""
}

// TestWorkerImageContext: the staged build context holds exactly what the Dockerfile copies.
func TestWorkerImageContext(t *testing.T) {
	dir := workerAsset(t)
	top := readDir(t, dir)
	if want := []string{".dockerignore", "shared", "worker"}; !slices.Equal(top, want) {
		t.Errorf("build context holds %v, want %v", top, want)
	}
	worker := readDir(t, filepath.Join(dir, "worker"))
	if want := []string{"Dockerfile", "cmd", "docker-entrypoint.sh", "go.mod", "go.sum", "internal"}; !slices.Equal(worker, want) {
		t.Errorf("worker/ in the build context holds %v, want %v", worker, want)
	}
	_ = filepath.WalkDir(dir, func(path string, d os.DirEntry, err error) error {
		if err == nil && (strings.HasSuffix(path, "_test.go") || d.Name() == "testdata") {
			t.Errorf("build context includes %s", strings.TrimPrefix(path, dir))
		}
		return nil
	})
	if fi, err := os.Stat(filepath.Join(dir, "worker", "docker-entrypoint.sh")); err != nil || fi.Mode()&0o111 == 0 {
		t.Errorf("docker-entrypoint.sh is missing or not executable: %v", err)
	}

	// Every COPY source of the Dockerfile's build stage exists in the context.
	f, err := os.Open(filepath.Join(dir, WorkerDockerfile))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var copies int
	for sc := bufio.NewScanner(f); sc.Scan(); {
		fields := strings.Fields(sc.Text())
		if len(fields) < 3 || fields[0] != "COPY" {
			continue
		}
		args := slices.DeleteFunc(fields[1:], func(a string) bool { return strings.HasPrefix(a, "--chmod") })
		if strings.HasPrefix(args[0], "--from") {
			continue
		}
		for _, src := range args[:len(args)-1] {
			copies++
			if _, err := os.Stat(filepath.Join(dir, src)); err != nil {
				t.Errorf("Dockerfile copies %s, which the build context lacks", src)
			}
		}
	}
	if copies < 5 {
		t.Errorf("found only %d COPY sources in the Dockerfile", copies)
	}
}

// TestWorkerImageBuildsFromContext runs the Dockerfile's build step (go build of ./cmd/worker with
// GOWORK=off, as in the image) on the staged context, so a context that misses a module or a replace
// target fails here rather than in the pipeline.
func TestWorkerImageBuildsFromContext(t *testing.T) {
	dir := workerAsset(t)
	cmd := exec.Command("go", "build", "-trimpath", "-o", filepath.Join(t.TempDir(), "worker"), "./cmd/worker")
	cmd.Dir = filepath.Join(dir, "worker")
	cmd.Env = append(os.Environ(), "GOWORK=off", "CGO_ENABLED=0", "GOOS=linux", "GOARCH=amd64", "GOFLAGS=-mod=readonly")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("the worker does not build from the image's context: %v\n%s", err, out)
	}
}

// TestWorkerEntrypoint runs the image's entrypoint with a stand-in worker that prints its environment.
func TestWorkerEntrypoint(t *testing.T) {
	entrypoint := filepath.Join(repoRoot, "worker", "docker-entrypoint.sh")
	fake := filepath.Join(t.TempDir(), "worker")
	if err := os.WriteFile(fake, []byte("#!/bin/sh\nenv\necho \"args=$*\"\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	run := func(env ...string) (map[string]string, string, error) {
		cmd := exec.Command("/bin/sh", entrypoint, "-x", "y")
		cmd.Env = append([]string{"PATH=" + os.Getenv("PATH"), "WORKER_BIN=" + fake}, env...)
		out, err := cmd.CombinedOutput()
		vars := map[string]string{}
		for _, line := range strings.Split(string(out), "\n") {
			if k, v, ok := strings.Cut(line, "="); ok {
				vars[k] = v
			}
		}
		return vars, string(out), err
	}

	vars, out, err := run("RABBITMQ_ENDPOINT=amqps://b-1234.mq.eu-west-1.on.aws:5671", "RABBITMQ_USERNAME=scraper", "RABBITMQ_PASSWORD=p@ss:w/rd%1")
	if err != nil {
		t.Fatalf("entrypoint failed: %v\n%s", err, out)
	}
	if got, want := vars["RABBITMQ_URL"], "amqps://scraper:p%40ss%3Aw%2Frd%251@b-1234.mq.eu-west-1.on.aws:5671"; got != want {
		t.Errorf("RABBITMQ_URL = %q, want %q", got, want)
	}
	if _, ok := vars["RABBITMQ_PASSWORD"]; ok {
		t.Error("RABBITMQ_PASSWORD still reaches the worker")
	}
	if vars["args"] != "-x y" {
		t.Errorf("arguments %q, want %q", vars["args"], "-x y")
	}

	vars, out, err = run("RABBITMQ_URL=amqp://guest:guest@127.0.0.1:5672/", "RABBITMQ_ENDPOINT=amqps://other:5671", "RABBITMQ_USERNAME=u", "RABBITMQ_PASSWORD=p")
	if err != nil || vars["RABBITMQ_URL"] != "amqp://guest:guest@127.0.0.1:5672/" {
		t.Errorf("an explicit RABBITMQ_URL must win: %q, %v\n%s", vars["RABBITMQ_URL"], err, out)
	}

	if _, out, err = run("RABBITMQ_ENDPOINT=amqps://b-1:5671", "RABBITMQ_USERNAME=u"); err == nil || !strings.Contains(out, "RABBITMQ_PASSWORD") {
		t.Errorf("missing password: err %v, output %s", err, out)
	}
	if _, out, err = run("RABBITMQ_ENDPOINT=amqps://x:y@b-1:5671", "RABBITMQ_USERNAME=u", "RABBITMQ_PASSWORD=p"); err == nil || !strings.Contains(out, "without credentials") {
		t.Errorf("endpoint with credentials: err %v, output %s", err, out)
	}
}

func readDir(t *testing.T, dir string) []string {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
	}
	slices.Sort(names)
	return names
}
