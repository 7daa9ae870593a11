//go:build !unix

package repository

import (
	"io"
	"time"
)

type noLock struct{}

func (noLock) Close() error { return nil }

// lockDir does nothing where flock(2) does not exist: one worker per cache folder is then up to the operator.
func lockDir(string, time.Duration) (io.Closer, error) { return noLock{}, nil }
