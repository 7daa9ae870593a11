//go:build !unix

package main

import "log/slog"

// fitDescriptorLimit returns max: only unix systems have RLIMIT_NOFILE.
func fitDescriptorLimit(max int, _ *slog.Logger) int { return max }
