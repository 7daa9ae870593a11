package stack

import (
	"errors"
	"fmt"
	"net"
	"strconv"
	"syscall"

	"github.com/scrapeplatform/platform/shared/portprobe"
)

// AddrFree reports whether nothing listens on the TCP address addr: it binds
// it and lets it go at once. A nil error means free (until someone else binds
// it); the error names the address, "taken" when something listens on it.
func AddrFree(addr string) error {
	err := portprobe.Free(addr)
	if errors.Is(err, syscall.EADDRINUSE) {
		return fmt.Errorf("%s is taken: something listens on it", addr)
	}
	if err != nil {
		return fmt.Errorf("%s cannot be listened on: %w", addr, err)
	}
	return nil
}

// FreeAddr returns addr when it is free, else addr's host with a port the
// system picks (moved reports which). Two stacks on one machine use it for
// the ports nobody asked for by name: the second gets free ones.
func FreeAddr(addr string) (free string, moved bool, err error) {
	if AddrFree(addr) == nil {
		return addr, false, nil
	}
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return "", false, err
	}
	picked, err := portprobe.Pick(host)
	if err != nil {
		return "", false, fmt.Errorf("no free port on %s: %w", host, err)
	}
	return picked.String(), true, nil
}

// FreePortRange returns base when the n loopback ports base+1..base+n are all
// free (the workers' metrics ports), else another base whose n ports are, near
// a port the system picks; moved reports which.
func FreePortRange(base, n int) (free int, moved bool, err error) {
	if n < 1 {
		return 0, false, fmt.Errorf("a port range needs at least one port, got %d", n)
	}
	if portRangeFree(base, n) {
		return base, false, nil
	}
	for range 50 {
		picked, err := portprobe.Pick("127.0.0.1")
		if err != nil {
			return 0, false, err
		}
		first := picked.Port
		if first+n-1 <= 65535 && portRangeFree(first-1, n) {
			return first - 1, true, nil
		}
	}
	return 0, false, errors.New("found no range of free loopback ports")
}

func portRangeFree(base, n int) bool {
	if base < 0 || base+n > 65535 {
		return false
	}
	for p := base + 1; p <= base+n; p++ {
		if AddrFree(net.JoinHostPort("127.0.0.1", strconv.Itoa(p))) != nil {
			return false
		}
	}
	return true
}
