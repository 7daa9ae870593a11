// Package portprobe checks TCP ports by listening on them for an instant, holding fork off meanwhile.
//
// A listener is a file descriptor: a process another goroutine forks while it is open gets a copy, which
// keeps the port bound (in LISTEN, owned by no one who wants it) until that child's exec closes it. A port
// just found free is then busy for whoever binds it next: the check after this one, or the process started
// to listen on it. Tests that start processes while others check ports saw exactly that. Each probe here
// holds syscall.ForkLock (which os/exec takes for writing around fork) while its listener is open, on
// Linux, where creating a socket takes no ForkLock of its own. Measured, this makes such collisions rare,
// not impossible (two local/stack tests side by side: 7 busy ports in 30 runs without it, none in 60 with
// it; a loop binding probed ports while two goroutines run /bin/true still hits one in a few thousand
// binds, which the lock does not explain): callers that start processes on probed ports still retry.
package portprobe

import (
	"net"
	"runtime"
	"syscall"
)

// Free listens on the TCP address addr and closes the listener at once. A nil error means the port was free;
// the error wraps syscall.EADDRINUSE when something listens on it.
func Free(addr string) error {
	defer holdFork()()
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return err
	}
	return ln.Close()
}

// Pick returns an address on host with a port the kernel picks, free a moment ago.
func Pick(host string) (*net.TCPAddr, error) {
	defer holdFork()()
	ln, err := net.Listen("tcp", net.JoinHostPort(host, "0"))
	if err != nil {
		return nil, err
	}
	addr := ln.Addr().(*net.TCPAddr)
	return addr, ln.Close()
}

// holdFork holds fork off until the function it returns is called.
func holdFork() (release func()) {
	if runtime.GOOS != "linux" {
		return func() {}
	}
	syscall.ForkLock.RLock()
	return syscall.ForkLock.RUnlock
}
