//go:build unix && !linux

package runner

import (
	"errors"
	"log/slog"
	"os/exec"
	"time"
)

// Outside Linux there is no child subreaper: a run's escaped processes are not swept.

func startChild(cmd *exec.Cmd) error { return cmd.Start() }

func forgetChild(int) {}

func enableSweeping(*slog.Logger) error {
	return errors.New("sweeping escaped processes needs Linux (PR_SET_CHILD_SUBREAPER)")
}

func sweep(int, time.Duration) int { return 0 }

func tasksOf(int) int { return 0 }

// userIdle cannot be told without /proc: the user counts as busy, so nothing of it is removed.
func userIdle(int) bool { return false }

func nprocPerUserNamespace() bool { return false }
