// Command fakeproc stands in for the gateway-local and worker binaries in the
// stack tests. Built as "gateway-local" it serves GET /health on
// GATEWAY_ADDR; built under any other name it serves GET /healthz on
// WORKER_METRICS_ADDR. Both serve GET /env (its environment as JSON).
//
// Knobs (environment; when FAKE_TARGET is set they apply only to the process
// whose role — "gateway" or its WORKER_ID — equals it):
//
//	FAKE_EXIT_EARLY=N     print a few lines and exit with status N before listening
//	FAKE_NEVER_READY=1    answer the health check with 503
//	FAKE_IGNORE_TERM=1    ignore SIGTERM and SIGINT
//	FAKE_SPAWN_CHILD=1    start a child (in the same group) that ignores SIGTERM,
//	                      and go on only once it has printed "child pid N"
//	FAKE_CRASH_AFTER=D    exit with status 3 after duration D
//	FAKE_TERM_EXIT=N      exit with status N after SIGTERM (default 0)
//
// POST /crash (any process, no knob needed) makes it print a panic line and
// exit with status 3, as FAKE_CRASH_AFTER does, but when the test says so.
package main

import (
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strconv"
	"syscall"
	"time"
)

func main() {
	if os.Getenv("FAKE_CHILD") == "1" {
		signal.Ignore(syscall.SIGTERM, syscall.SIGINT)
		fmt.Printf("child pid %d\n", os.Getpid())
		// Tell the parent the line is out (fd 3, see FAKE_SPAWN_CHILD).
		announced := os.NewFile(3, "announced")
		_, _ = announced.Write([]byte{1})
		announced.Close()
		select {}
	}
	role, addr, health := os.Getenv("WORKER_ID"), os.Getenv("WORKER_METRICS_ADDR"), "/healthz"
	if filepath.Base(os.Args[0]) == "gateway-local" {
		role, addr, health = "gateway", os.Getenv("GATEWAY_ADDR"), "/health"
	}
	knob := func(k string) string {
		if t := os.Getenv("FAKE_TARGET"); t != "" && t != role {
			return ""
		}
		return os.Getenv(k)
	}
	fmt.Printf("%s starting pid %d\n", role, os.Getpid())
	fmt.Fprintf(os.Stderr, "%s says hello on stderr\n", role)

	if code := knob("FAKE_EXIT_EARLY"); code != "" {
		n, _ := strconv.Atoi(code)
		fmt.Println("connecting to the broker")
		fmt.Fprint(os.Stderr, "fatal: cannot connect to broker: boom") // no newline on purpose
		os.Exit(n)
	}
	if knob("FAKE_SPAWN_CHILD") == "1" {
		// The child prints its pid straight into our output; a byte on an
		// extra pipe says it has done so. Going on only then means a test
		// that reads the child's pid finds it even when this process then
		// crashes at once (FAKE_CRASH_AFTER) and its group is killed.
		r, w, err := os.Pipe()
		if err != nil {
			fmt.Println("spawn child:", err)
			os.Exit(1)
		}
		cmd := exec.Command(os.Args[0])
		cmd.Env = append(os.Environ(), "FAKE_CHILD=1")
		cmd.Stdout = os.Stdout
		cmd.ExtraFiles = []*os.File{w}
		if err := cmd.Start(); err != nil {
			fmt.Println("spawn child:", err)
			os.Exit(1)
		}
		w.Close()
		if _, err := r.Read(make([]byte, 1)); err != nil {
			fmt.Println("child did not announce itself:", err)
			os.Exit(1)
		}
		r.Close()
	}
	sigs := make(chan os.Signal, 1)
	if knob("FAKE_IGNORE_TERM") == "1" {
		signal.Ignore(syscall.SIGTERM, syscall.SIGINT)
	} else {
		signal.Notify(sigs, syscall.SIGTERM, syscall.SIGINT)
	}

	ready := knob("FAKE_NEVER_READY") != "1"
	mux := http.NewServeMux()
	mux.HandleFunc("GET "+health, func(w http.ResponseWriter, _ *http.Request) {
		if !ready {
			http.Error(w, `{"status":"unhealthy"}`, http.StatusServiceUnavailable)
			return
		}
		fmt.Fprint(w, `{"status":"healthy"}`)
	})
	mux.HandleFunc("GET /env", func(w http.ResponseWriter, _ *http.Request) {
		_ = json.NewEncoder(w).Encode(os.Environ())
	})
	mux.HandleFunc("POST /crash", func(w http.ResponseWriter, _ *http.Request) {
		// Answer first, so the caller sees the request arrived; then crash.
		w.Header().Set("Content-Length", "0")
		w.WriteHeader(http.StatusAccepted)
		w.(http.Flusher).Flush()
		crash()
	})
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		fmt.Println("listen:", err)
		os.Exit(1)
	}
	go func() { _ = http.Serve(ln, mux) }()
	fmt.Printf("%s listening on %s\n", role, ln.Addr())

	if d := knob("FAKE_CRASH_AFTER"); d != "" {
		after, _ := time.ParseDuration(d)
		go func() {
			time.Sleep(after)
			crash()
		}()
	}
	sig := <-sigs
	fmt.Printf("%s got %v, draining\n", role, sig)
	code, _ := strconv.Atoi(knob("FAKE_TERM_EXIT"))
	os.Exit(code)
}

// crash ends the process as a worker that panicked would.
func crash() {
	fmt.Println("panic: something went badly wrong")
	os.Exit(3)
}
