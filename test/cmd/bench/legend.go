package main

import (
	"fmt"
	"io"
)

// legend explains every column `make bench` prints: this tool's table, then the two Go benchmarks the make
// target runs after it (worker/internal/runner and worker/internal/envcache).
const legend = `
What the columns mean:
  run              raw amqp091 RPC: the platform's transport alone, with a worker's guarantees (persistent
                   messages into a quorum queue, publisher confirms, direct reply-to, responders that answer
                   at once on a confirming channel and ack a task only once its reply is confirmed); raw
                   RPC, unconfirmed replies: the same with replies published unconfirmed and tasks acked at
                   once (a reply may be lost after its task was acked: weaker than a worker; printed for
                   reference, with the trivial run's ratio against it on the line below the table); raw amqp091 RPC
                   200ms x32: the same transport under blocking 200ms x32's pattern (32 callers, responders
                   that answer 200 ms after each delivery): the best ratio any platform on this transport
                   can reach here, since the broker's own latency (the quorum queue's commit) counts against
                   the ideal too; system <scenario>:
                   the real gateway and workers (make run's topology) over HTTP with a JWT: trivial (a script
                   that returns at once), async 200ms x64 / async 2s x1000 (an async def script awaiting that
                   long, with that many callers), blocking 200ms x32 (a def script in time.sleep), fetch 200ms
                   x64 (a blocking urllib fetch, through the egress proxy, of a page on this machine that
                   answers in 200 ms), each of these two also with "threads" (the same script with a
                   manifest asking for "isolation": "threads": a runner serves many calls at once, a thread
                   each, instead of a process per call), fetch 200ms x64 settled (the process-per-call fetch
                   again, measured once the steady state is reached: its warm-up goes on until no warm runner
                   has started for 3 s, at most 90 s; how long it took is printed below the table; blocking
                   200ms x32 warms up so too), cpu-bound
                   50ms x4 (a def script burning 50 ms of CPU per call, 4 callers)
  requests/s       completed requests per second over the measured period (the warm-up is not counted)
  p50              latency seen by the caller: half of the requests took at most this long
  p99              99% of the requests took at most this long
  errors           requests that failed or timed out during the measured period (0 expected)
  ideal/s          callers / the time one call waits: the throughput if the platform overlapped every wait;
                   cpu-bound: what the machine's CPUs allow (CPUs / 50 ms), all of them burning for the script
  ratio            trivial: its requests/s divided by raw's (1 = no cost over the transport); the others:
                   requests/s divided by ideal/s (1 = every wait overlapped)
  peak RSS         the largest resident memory of the workers and all their runners during the run
  starts           warm runners the workers started during the run, warm-up included (each an interpreter,
                   its containment and the script's imports): one per concurrent call of a script that runs
                   a process per call, until that many are up
  avg start        their mean start time, spawn to ready (scraping_warm_runner_start_duration_seconds): on a
                   busy CPU far longer than on an idle one, and what bounds how fast such a script ramps up
  jobs             the jobs runs, on a stack of their own whose gateway and workers keep jobs in a bucket of a
                   versitygw the bench starts, with 4 callers each: jobs sync (POST /scrape of the trivial
                   script, answered 200 within the sync window), jobs async + poll 50ms (Prefer:
                   respond-async, 202, then GET /jobs/{id} every 50 ms until the job is final), jobs async +
                   long poll (the same with GET /jobs/{id}?wait=20), jobs 10 MB claim-checked (a script
                   returning 10 MB: the worker stores it in the bucket, the 200 carries a data_url, the
                   caller downloads it)
  jobs/s           jobs completed per second over the measured period, each the whole call (submit, polls,
                   download)
  added p50        the run's p50 minus jobs sync's: what answering through the job (202, then polls) adds
  MB/s             result bytes received per second (10^6 bytes), the data_url downloads
CPU per request: the machine's CPU during each run's measured period, read from /proc every 250 ms,
divided by the requests completed (ms of one core per request; on a 2-core machine 1,000 requests/s at
2 ms each keep both cores busy). It bounds what a run without waits (trivial, raw) can reach, and
unlike requests/s it hardly moves with a noisy neighbour. Each process counts its own time from its first
reading (or its start) to its last, so one that lives less than 250 ms goes uncounted (in other):
  machine          every process's (all CPUs' busy time: /proc/stat without idle and iowait)
  broker           RabbitMQ's (the processes named beam.smp)
  gateway          the gateway's process
  workers          the workers' own processes
  runners          the processes below the workers: namespace helpers and Python runners
  bench            this tool's process: the callers' HTTP or AMQP clients, the raw runs' responders, the
                   fetch scenarios' page server
  other            what none of the above was charged with: interrupts and softirqs (much of the loopback
                   network's work), the kernel's threads, other services on the machine
  idle             the share of the machine's CPUs that nobody used
Then make bench runs three Go benchmarks (go test -bench; ns/op is the time of one benchmark iteration):
  cold-ms/req      ms per run of a trivial script in a fresh Python process
  warm-ms/req      ms per run of the same script on a warm runner (a Python process kept between runs)
  cold/warm        how many times slower cold is than warm
  shared-calls/s   calls/s of 64 concurrent async scripts awaiting 200 ms, all in one shared warm runner
                   (the ideal is 320/s)
  one-per-runner-calls/s  the same calls when each warm runner serves one call at a time (the old path)
  shared/old       how many times more calls/s the shared runner serves
  uncached-ms      ms a script's first request pays to build its environment (venv + offline pip install)
  cached-ms        ms the same first request pays when the environment is already on disk
  uncached/cached  how many times slower uncached is than cached
And one the make target leaves out (cd worker && go test -run '^$' -bench ColdRunByContainment ./internal/runner/):
  ms/run           ms per cold run of a trivial script under each containment the machine allows (one
                   sub-benchmark each: namespaces, pidns, session)
`

// printLegend writes the legend to out.
func printLegend(out io.Writer) {
	fmt.Fprint(out, legend)
}
