package main

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strconv"

	"github.com/scrapeplatform/platform/local/stack"
)

// settlePorts makes sure, before anything starts, that every address the
// stack will listen on is free, so that a second stack on this machine (in
// another checkout, with another GATEWAY_ADDR) either runs or says at once
// what is in its way:
//   - the gateway's address must be free: it is the one the user calls, so it
//     is never moved (the error suggests a free one);
//   - the S3 server's, Prometheus's and the workers' metrics ports, when left
//     at their defaults, move to free ports if taken (logged; the banner shows
//     the real ones);
//   - the same set by the user (-s3-addr, PROMETHEUS_ADDR or -prometheus-addr,
//     -worker-metrics-base-port) are not moved: taken, they are errors.
//
// Every taken address is reported in one error.
func settlePorts(cfg *config, log *slog.Logger) error {
	var taken []error
	var moves []func() // logged only when the stack goes ahead
	if err := stack.AddrFree(cfg.gatewayAddr); err != nil {
		taken = append(taken, fmt.Errorf("gateway: %w; set GATEWAY_ADDR (or -gateway-addr) to a free address%s",
			err, suggestAddr(cfg.gatewayAddr, " such as GATEWAY_ADDR=")))
	}
	settle := func(what, setting string, addr *string, chosen bool) {
		if !chosen {
			free, moved, err := stack.FreeAddr(*addr)
			if err != nil {
				taken = append(taken, fmt.Errorf("%s: %w", what, err))
				return
			}
			if moved {
				from := *addr
				moves = append(moves, func() {
					log.Info(what+": its default address is taken (another stack?); using a free port", "taken", from, "addr", free)
				})
				*addr = free
			}
			return
		}
		if err := stack.AddrFree(*addr); err != nil {
			taken = append(taken, fmt.Errorf("%s: %w; set %s to a free address%s", what, err, setting, suggestAddr(*addr, ", e.g. ")))
		}
	}
	if cfg.localS3 || cfg.repositoryType == "" { // startScriptServer may start one
		settle("S3 server", "-s3-addr", &cfg.s3Addr, cfg.s3AddrChosen)
	}
	if cfg.prometheusAddr != "" {
		settle("Prometheus", "PROMETHEUS_ADDR (or -prometheus-addr; off: none)", &cfg.prometheusAddr, cfg.prometheusAddrChosen)
	}

	first, last := cfg.metricsBasePort+1, cfg.metricsBasePort+cfg.workers
	if cfg.metricsBaseChosen {
		for p := first; p <= last; p++ {
			if err := stack.AddrFree(net.JoinHostPort("127.0.0.1", strconv.Itoa(p))); err != nil {
				taken = append(taken, fmt.Errorf("worker metrics (ports %d..%d): %w; set -worker-metrics-base-port to another base", first, last, err))
			}
		}
	} else {
		base, moved, err := stack.FreePortRange(cfg.metricsBasePort, cfg.workers)
		switch {
		case err != nil:
			taken = append(taken, fmt.Errorf("worker metrics: %w", err))
		case moved:
			moves = append(moves, func() {
				log.Info("worker metrics: the default ports are taken (another stack?); using free ones",
					"taken", fmt.Sprintf("127.0.0.1:%d..%d", first, last), "ports", fmt.Sprintf("127.0.0.1:%d..%d", base+1, base+cfg.workers))
			})
			cfg.metricsBasePort = base
		}
	}
	if len(taken) > 0 {
		return fmt.Errorf("addresses in use (is another stack running?):\n%w", errors.Join(taken...))
	}
	for _, m := range moves {
		m()
	}
	return nil
}

// suggestAddr names a free address on addr's host, the next free port above
// addr's if there is one close by, prefixed by prefix; "" if none is found.
func suggestAddr(addr, prefix string) string {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return ""
	}
	p, err := strconv.Atoi(port)
	if err != nil {
		return ""
	}
	for next := p + 1; next <= p+20 && next <= 65535; next++ {
		if a := net.JoinHostPort(host, strconv.Itoa(next)); stack.AddrFree(a) == nil {
			return prefix + a
		}
	}
	if free, _, err := stack.FreeAddr(addr); err == nil {
		return prefix + free
	}
	return ""
}
