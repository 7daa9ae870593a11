//go:build unix

package main

import (
	"log/slog"
	"syscall"
)

// descriptorReserve is kept free of client connections: the broker connection, the listener, logs, /proc
// reads.
const descriptorReserve = 256

// fitDescriptorLimit returns max lowered, with a warning, to what the process's descriptor limit
// (RLIMIT_NOFILE, which Go raises to the hard limit at start) leaves after descriptorReserve, so that a
// flood of connections meets the cap's 503 rather than "too many open files".
// An unlimited (or absurdly large) limit leaves max as it is.
func fitDescriptorLimit(max int, log *slog.Logger) int {
	var lim syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil || lim.Cur > 1<<30 {
		return max
	}
	room := int(lim.Cur) - descriptorReserve
	if room < 16 {
		room = 16
	}
	if max > room {
		log.Warn("GATEWAY_MAX_CONNECTIONS lowered to fit the descriptor limit", "asked", max, "max_connections", room, "nofile", lim.Cur)
		return room
	}
	return max
}
