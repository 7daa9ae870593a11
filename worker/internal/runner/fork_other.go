//go:build unix && !linux

package runner

import (
	"errors"
	"os"
)

// forkSupported: templates need SO_PASSCRED and pidfds, which only Linux has; elsewhere every runner starts
// afresh.
const forkSupported = false

var errNoFork = errors.New("templates need Linux")

func probeFork() error                                    { return errNoFork }
func controlPair() (worker, template *os.File, err error) { return nil, nil, errNoFork }
func senderPid([]byte) (int, bool)                        { return 0, false }
func firstChild(int) (int, bool)                          { return 0, false }
func pinChild(int, int) (pidfd, nspid int, err error)     { return -1, 0, errNoFork }
func waitPidfd(int)                                       {}
func registerChild(int)                                   {}
func killSession(int) int                                 { return 0 }
func killAdopted(int, int) int                            { return 0 }
