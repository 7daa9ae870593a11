package stack

import (
	"net"
	"strconv"
	"strings"
	"testing"
)

// occupy listens on addr until the test ends.
func occupy(t *testing.T, addr string) {
	t.Helper()
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
}

func TestAddrFree(t *testing.T) {
	addr := freeAddr(t)
	if err := AddrFree(addr); err != nil {
		t.Fatalf("free address: %v", err)
	}
	occupy(t, addr)
	if err := AddrFree(addr); err == nil || !strings.Contains(err.Error(), addr+" is taken") {
		t.Fatalf("taken address: %v, want it named as taken", err)
	}
}

func TestFreeAddrKeepsAFreeOneAndMovesATakenOne(t *testing.T) {
	addr := freeAddr(t)
	got, moved, err := FreeAddr(addr)
	if err != nil || moved || got != addr {
		t.Fatalf("FreeAddr(free %s) = %s, %v, %v; want it unchanged", addr, got, moved, err)
	}
	occupy(t, addr)
	got, moved, err = FreeAddr(addr)
	if err != nil || !moved || got == addr || !strings.HasPrefix(got, "127.0.0.1:") {
		t.Fatalf("FreeAddr(taken %s) = %s, %v, %v; want another loopback port", addr, got, moved, err)
	}
	if err := AddrFree(got); err != nil {
		t.Fatalf("the new address is not free: %v", err)
	}
}

func TestFreePortRange(t *testing.T) {
	base := freePortRange(t, 3)
	got, moved, err := FreePortRange(base, 3)
	if err != nil || moved || got != base {
		t.Fatalf("FreePortRange(free %d) = %d, %v, %v; want it unchanged", base, got, moved, err)
	}
	occupy(t, "127.0.0.1:"+strconv.Itoa(base+2)) // the middle one
	got, moved, err = FreePortRange(base, 3)
	if err != nil || !moved || got == base {
		t.Fatalf("FreePortRange(taken %d) = %d, %v, %v; want another range", base, got, moved, err)
	}
	for p := got + 1; p <= got+3; p++ {
		if err := AddrFree("127.0.0.1:" + strconv.Itoa(p)); err != nil {
			t.Errorf("port %d of the new range: %v", p, err)
		}
	}
	if _, _, err := FreePortRange(base, 0); err == nil {
		t.Error("an empty range is accepted")
	}
}
