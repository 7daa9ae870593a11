//go:build linux

package protect

import (
	"bufio"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestProcess runs a helper process (this test binary, see TestMain) that protects itself, then reads its
// /proc/<pid>/environ from outside: a process of another user (or of the same one, when not root) is
// refused; root, who may read it, finds the secret gone. The helper also reports that it is no longer
// dumpable and that os.Getenv still works.
func TestProcess(t *testing.T) {
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	var prefix []string
	if os.Getuid() == 0 {
		// As root, the helper and the reader run as uid 65534: the same user, as scripts and the gateway
		// are under make run. The helper needs a copy of this binary that user can execute.
		b, err := os.ReadFile(exe)
		if err != nil {
			t.Fatal(err)
		}
		dir, err := os.MkdirTemp("", "protect-test-")
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = os.RemoveAll(dir) })
		exe = filepath.Join(dir, "helper.test")
		if err := os.WriteFile(exe, b, 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		prefix = []string{"setpriv", "--reuid=65534", "--regid=65534", "--clear-groups"}
	}
	cmd := exec.Command(exe, "-test.run=^$")
	if prefix != nil {
		cmd = exec.Command(prefix[0], append(prefix[1:], exe, "-test.run=^$")...)
	}
	cmd.Env = []string{"PROTECT_HELPER=1", "JWT_SECRET=hunter2-hunter2-hunter2-hunter2-hunter2"}
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	line, err := bufio.NewReader(out).ReadString('\n')
	if err != nil || strings.TrimSpace(line) != "protected dumpable=false" {
		t.Fatalf("helper said %q (%v)", line, err)
	}
	environ := fmt.Sprintf("/proc/%d/environ", cmd.Process.Pid)
	b, err := os.ReadFile(environ)
	switch {
	case err == nil && strings.Contains(string(b), "hunter2"):
		t.Fatalf("%s still holds the secret", environ)
	case err == nil && os.Getuid() != 0:
		t.Fatalf("a process of the helper's own user read %s", environ)
	case err != nil && !os.IsPermission(err):
		t.Fatalf("read %s: %v", environ, err)
	}
	t.Logf("uid %d reading %s: err=%v, %d bytes without the secret", os.Getuid(), environ, err, len(b))
	if prefix != nil {
		reader := exec.Command(prefix[0], append(prefix[1:], "cat", environ)...)
		out, err := reader.CombinedOutput()
		if err == nil || !strings.Contains(string(out), "Permission denied") {
			t.Fatalf("a process of the helper's own user (65534) read %s: %v %q", environ, err, out)
		}
	}
}

func TestMain(m *testing.M) {
	if os.Getenv("PROTECT_HELPER") != "" {
		if err := Process(); err != nil {
			fmt.Println("Process:", err)
			os.Exit(1)
		}
		if os.Getenv("JWT_SECRET") == "" {
			fmt.Println("the Go environment lost JWT_SECRET")
			os.Exit(1)
		}
		d, err := Dumpable()
		if err != nil {
			fmt.Println("Dumpable:", err)
			os.Exit(1)
		}
		fmt.Printf("protected dumpable=%v\n", d)
		time.Sleep(time.Minute)
		os.Exit(0)
	}
	os.Exit(m.Run())
}
