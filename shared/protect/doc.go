// Package protect keeps a long-running process's secrets away from other processes of its user, above all
// the scripts a worker runs and, under `make run` as root, the scripts that then run as the same user as
// the local gateway.
//
// [Process] overwrites the process's original environment block (what /proc/<pid>/environ shows) with zero
// bytes and marks the process non-dumpable (prctl PR_SET_DUMPABLE 0), so that processes of the same user
// can neither read its /proc files (environ, mem, maps, fd) nor ptrace it. The Go runtime keeps its own
// copy of the environment, so os.Getenv still works afterwards. Root (CAP_SYS_PTRACE) still sees
// everything; the zeroed block is what it finds in environ.
//
// The worker and the local gateway both call it at start.
package protect
