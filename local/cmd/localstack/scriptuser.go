package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"time"
)

// defaultScriptUIDs is the range scripts run as when localstack runs as root and neither SCRIPT_RUN_AS nor
// SCRIPT_UID_RANGE is set: each script as a uid of its own (the worker's SCRIPT_UID_RANGE), so a script can
// read neither the gateway's nor the worker's secrets nor signal them, nor another script's runs.
// defaultScriptUser, its first uid, is the one the interpreter and the scripts are checked with.
const (
	defaultScriptUIDs = "200000-265535"
	defaultScriptUser = 200000
)

// scriptUser decides SCRIPT_UID_RANGE (and, where needed, WORKER_PYTHON) for the workers of a stack
// started by root without SCRIPT_RUN_AS or SCRIPT_UID_RANGE: scripts run unprivileged by default. The user must be able to run the
// interpreter and read the script folder (scriptsDir, "" when scripts come from a repository the worker
// copies into its own cache): the interpreter on PATH (or WORKER_PYTHON) is tried first, then the
// system's (/usr/bin/python3, /usr/local/bin/python3) when WORKER_PYTHON is not set; the first that works
// wins. When none does, the scripts keep running as root and warning says why and what to do. env is
// what to add to the workers' environment; both are empty when localstack is not root or the user chose.
func scriptUser(ctx context.Context, getenv func(string) string, euid int, scriptsDir string) (env []string, note, warning string) {
	if euid != 0 || getenv("SCRIPT_RUN_AS") != "" || getenv("SCRIPT_UID_RANGE") != "" {
		return nil, "", ""
	}
	candidates := []string{or(getenv("WORKER_PYTHON"), "python3")}
	if getenv("WORKER_PYTHON") == "" {
		candidates = append(candidates, "/usr/bin/python3", "/usr/local/bin/python3")
	}
	var problems []string
	for i, python := range candidates {
		err := probeScriptUser(ctx, python, defaultScriptUser, scriptsDir)
		if err == nil {
			env = []string{"SCRIPT_UID_RANGE=" + defaultScriptUIDs}
			if i > 0 {
				env = append(env, "WORKER_PYTHON="+python)
			}
			return env, fmt.Sprintf("scripts run as uids of their own (SCRIPT_UID_RANGE=%s) with %s", defaultScriptUIDs, python), ""
		}
		problems = append(problems, fmt.Sprintf("%s: %v", python, err))
	}
	return nil, "", fmt.Sprintf("running as root, but uid %d cannot run the interpreter or read the scripts (%s), so scripts run as ROOT: "+
		"make the scripts and an interpreter readable by every user (SCRIPT_UID_RANGE, WORKER_PYTHON), or set SCRIPT_RUN_AS=uid:gid to a user who can",
		defaultScriptUser, strings.Join(problems, "; "))
}

// probeScriptUser runs python as uid and checks that it can reach into scriptsDir (the script folders
// inside are world-readable as a repository keeps them; listing the folder is the worker's business).
func probeScriptUser(ctx context.Context, python string, uid int, scriptsDir string) error {
	path, err := exec.LookPath(python)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	code := "import os, sys\nd = sys.argv[1]\nsys.exit(0 if not d or os.access(d, os.X_OK) else 3)"
	cmd := exec.CommandContext(ctx, path, "-I", "-S", "-c", code, scriptsDir)
	cmd.Dir = "/"
	cmd.Env = []string{"PATH=/usr/local/bin:/usr/bin:/bin"}
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: uint32(uid), Gid: uint32(uid), Groups: []uint32{}}}
	out, err := cmd.CombinedOutput()
	var exit *exec.ExitError
	switch {
	case err == nil:
		return nil
	case errors.As(err, &exit) && exit.ExitCode() == 3:
		return fmt.Errorf("cannot reach the script folder %s", scriptsDir)
	case len(out) > 0:
		return fmt.Errorf("%w: %s", err, strings.TrimSpace(string(out)))
	}
	return err
}

// euid is the effective user localstack runs as.
var euid = os.Geteuid
