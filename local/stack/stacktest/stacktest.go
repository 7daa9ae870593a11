// Package stacktest holds what the tests of the stack package and of cmd/localstack share: the stand-in
// gateway-local and worker binaries (built from stack/testdata/fakeproc), the request that makes a
// stand-in crash, and a fake broker that answers the AMQP liveness probe.
//
// It does not import the stack package, so the stack package's own tests can use it.
package stacktest

import (
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"testing"
)

// RunWithFakes is the body of a TestMain: it builds the stand-ins into a new temporary folder (BuildFakes),
// then, when also is not nil, lets also add to it; stores the folder in *binDir, runs the tests and
// removes the folder. It returns the exit code: 1, after printing why, when a build failed.
func RunWithFakes(m *testing.M, binDir *string, also func(dir string) error) int {
	dir, err := os.MkdirTemp("", "stack-fakes-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer os.RemoveAll(dir)
	if err := BuildFakes(dir); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	if also != nil {
		if err := also(dir); err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
	}
	*binDir = dir
	return m.Run()
}

// BuildFakes builds stack/testdata/fakeproc into dir as gateway-local and worker (a hard link: the
// stand-in picks its role from its name).
func BuildFakes(dir string) error {
	// go test puts its own GOROOT/bin first on the test's PATH.
	goBin, err := exec.LookPath("go")
	if err != nil {
		return err
	}
	_, self, _, ok := runtime.Caller(0)
	if !ok {
		return errors.New("stacktest: cannot tell where its source lies")
	}
	gw := filepath.Join(dir, "gateway-local")
	cmd := exec.Command(goBin, "build", "-o", gw, "../testdata/fakeproc")
	cmd.Dir = filepath.Dir(self)
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("build the stand-in binaries: %w: %s", err, out)
	}
	return os.Link(gw, filepath.Join(dir, "worker"))
}

// Crash makes the stand-in serving baseURL print a panic line and exit with status 3 (POST /crash). The
// process may exit before its answer is read, so a failed request is only logged: the caller checks
// what the process did.
func Crash(t testing.TB, baseURL string) {
	t.Helper()
	resp, err := http.Post(baseURL+"/crash", "", nil)
	if err != nil {
		t.Logf("POST %s/crash: %v", baseURL, err)
		return
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusAccepted {
		t.Fatalf("POST %s/crash: %s", baseURL, resp.Status)
	}
}

// ConnectionStart is the first frame a broker sends (connection.start), enough for the AMQP liveness
// probe.
var ConnectionStart = []byte{1, 0, 0, 0, 0, 0, 4, 0, 10, 0, 10, 0xCE}

// ServeAMQP answers each connection to ln with reply once the client has sent its protocol header, until
// the test ends, and returns ln's address. It is a fake for the liveness probe only: whatever talks to a
// broker for real is tested against a real RabbitMQ.
func ServeAMQP(t testing.TB, ln net.Listener, reply []byte) string {
	t.Helper()
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				head := make([]byte, 8)
				if _, err := c.Read(head); err != nil {
					return
				}
				_, _ = c.Write(reply)
			}()
		}
	}()
	return ln.Addr().String()
}

// Listen returns a listener on a free loopback port.
func Listen(t testing.TB) net.Listener {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	return ln
}
