"""Process ids as the worker sees them. A run may have a PID namespace of its own, where os.getpid() and
Popen.pid are small numbers; /proc belongs to the worker's namespace, so it tells the real ones."""
import os


def self_pid():
    return int(os.readlink("/proc/self"))


def self_pgid():
    with open("/proc/self/stat") as f:
        stat = f.read()
    return int(stat[stat.rindex(")") + 2 :].split()[2])


def of_child(ns_pid):
    """The worker-side pid of a process of this run that has ns_pid in the run's namespace."""
    mine = os.readlink("/proc/self/ns/pid")
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            if os.readlink("/proc/%s/ns/pid" % entry) != mine:
                continue
            with open("/proc/%s/status" % entry) as f:
                for line in f:
                    if line.startswith("NSpid:") and int(line.split()[-1]) == ns_pid:
                        return int(entry)
        except (OSError, ValueError):
            continue
    raise LookupError("no process %d in this namespace" % ns_pid)
