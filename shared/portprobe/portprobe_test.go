package portprobe

import (
	"errors"
	"net"
	"syscall"
	"testing"
)

func TestFreeAndPick(t *testing.T) {
	addr, err := Pick("127.0.0.1")
	if err != nil || addr.Port == 0 || !addr.IP.IsLoopback() {
		t.Fatalf("Pick = %v, %v", addr, err)
	}
	if err := Free(addr.String()); err != nil {
		t.Fatalf("Free(%s) = %v, want nil for the port Pick found", addr, err)
	}
	ln, err := net.Listen("tcp", addr.String())
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	if err := Free(addr.String()); !errors.Is(err, syscall.EADDRINUSE) {
		t.Fatalf("Free(%s) while it is listened on = %v, want EADDRINUSE", addr, err)
	}
	if _, err := Pick("256.0.0.1"); err == nil {
		t.Fatal("Pick on a host that is no address succeeded")
	}
}
