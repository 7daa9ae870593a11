// Package stack runs the platform on one machine: a RabbitMQ broker, the
// local gateway, a few workers and Prometheus, as `make run` and the
// end-to-end and observability tests need them.
//
// # Processes
//
// StartProcess runs one binary as a supervised Process:
//
//   - in its own process group (its pid is the group id), so Signal and Stop
//     reach everything it spawned — a worker's scripts included — and a
//     terminal's Ctrl-C reaches only the supervisor, which then stops the
//     children in order; on Linux the kernel also sends the child SIGTERM
//     should the supervisor die without stopping it;
//   - with stdout and stderr merged into one pipe and copied line by line to
//     a shared writer, each line prefixed "[name] ", never interleaved with
//     another process's line; the last 20 lines are kept for error messages;
//   - reaped by a goroutine that, once the process has exited, SIGKILLs what
//     is left of its group, so a crash leaves no orphans.
//
// Stop(timeout) is the one shutdown path: SIGTERM to the group, wait up to
// timeout, SIGKILL to the group, wait until reaped. Cancelling the context
// given to StartProcess does the same with DefaultStopGrace.
//
// # The stack
//
// Start checks the binaries and the listen addresses, starts the gateway
// (GATEWAY_ADDR) and the workers (WORKER_ID=worker-N, WORKER_METRICS_ADDR on
// consecutive loopback ports), then polls GET /health and GET /healthz until
// each answers 200. Any failure stops what was started and names the process
// that failed, with its last output. Every child gets Options.Env plus its
// own variables, which win.
//
// Stack.Stop is ordered as the workers need it: SIGTERM to every group at
// once — the gateway stops taking requests and finishes those in flight
// while each worker stops consuming and drains its running scrapes — then,
// after the timeout, SIGKILL to the groups still there. Stack.Exited reports
// a process that dies on its own, which for a local stack is a failure.
//
// # The broker
//
// EnsureBroker makes sure an AMQP 0-9-1 broker answers at RABBITMQ_URL (a
// protocol-header handshake, no credentials sent). If none does and the URL
// points at this machine, it starts one: a private RabbitMQ node when
// rabbitmq-server is installed, else the compose file's rabbitmq service
// when a Docker engine answers; otherwise its error says what to install.
//
// The private node shares nothing with a system RabbitMQ on the same
// machine: its node name (NodeName), AMQP port, distribution port, config
// and env files, plugins file, database, logs and Erlang cookie (its own
// HOME) are all its own, under the data folder. It is started from the real
// rabbitmq-server script, not from Debian's wrapper, which would switch to
// the rabbitmq user. Its stop runs `rabbitmqctl -n NODE stop`, then stops
// its process group like any Process, and ends the Erlang port mapper (epmd)
// only if the node had to start it and no other node uses it.
//
// # Nodes for fault tests
//
// StartNode starts a private node that a test owns outright: Stop (graceful), Halt (the VM exits at
// once, as in a crash) and Start again on the same data, and Ctl to run rabbitmqctl against it (policies,
// memory alarms, queue leaders). Nodes started with the same Erlang cookie form a cluster with
// JoinCluster; StartCluster starts several at once and joins them. Each node has its own port, node name,
// data folder and distribution port, so a test's cluster never touches the machine's own broker.
//
// With BrokerOptions.PrometheusPort set, a private node also runs the
// rabbitmq_prometheus plugin on that loopback port (RunBroker reports where),
// so that the node is scraped like any other.
//
// # Prometheus
//
// PrometheusConfig renders a Prometheus configuration for the stack's
// processes with the job names the dashboards and alert rules rely on
// (gateway, worker, rabbitmq, rabbitmq_queues; local/prometheus/prometheus.yml
// uses the same for compose). StartPrometheus runs Prometheus on it as a
// supervised Process with its own database and listen address, never a
// system service's, and Reload rewrites the file and reloads it (to add or
// remove targets). `make run` uses it when prometheus is installed; so does
// test/observability.
//
// # Ports
//
// Start, StartS3 and StartPrometheus refuse an address something already
// listens on (a server there would answer the health check of a process that
// failed to bind). AddrFree, FreeAddr and FreePortRange let a caller settle
// its addresses first: `make run` keeps the gateway's and the ones the user
// chose, and moves taken defaults to free ports, so that a second stack on
// the machine runs beside the first.
//
// The package is for Unix (Linux and macOS): it relies on process groups.
package stack
