package netguard

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// Resolver looks host names up; *net.Resolver is one.
type Resolver interface {
	LookupNetIP(ctx context.Context, network, host string) ([]netip.Addr, error)
}

var _ Resolver = (*net.Resolver)(nil)

// MaxURLLength is the longest URL CheckURL accepts.
const MaxURLLength = 2048

// ResolveTimeout bounds CheckURL's name lookup.
const ResolveTimeout = 3 * time.Second

// URLError says why a URL is refused, in words fit for the client that sent it.
type URLError struct {
	// Reason is a stable word: "invalid" (not an absolute http(s) URL, too long, credentials in it),
	// "resolve" (the host has no address) or "forbidden" (an address in a protected range).
	Reason string
	Msg    string
}

func (e *URLError) Error() string { return e.Msg }

// CheckURL reports why raw may not be called back (a *URLError), or nil: it must be an absolute http or
// https URL of at most MaxURLLength bytes without credentials, and every address its host resolves to must
// be allowed by p (an address literal, in any spelling inet_aton accepts, is checked as it is; a host name
// an EGRESS_ALLOW entry names is allowed whatever it resolves to). resolver nil uses net.DefaultResolver.
func (p Policy) CheckURL(ctx context.Context, resolver Resolver, raw string) error {
	invalid := func(format string, a ...any) error {
		return &URLError{Reason: "invalid", Msg: fmt.Sprintf(format, a...)}
	}
	if len(raw) > MaxURLLength {
		return invalid("callback_url is longer than %d characters", MaxURLLength)
	}
	u, err := url.Parse(raw)
	if err != nil {
		return invalid("callback_url is not a URL: %v", errors.Unwrap(err))
	}
	scheme := strings.ToLower(u.Scheme)
	if scheme != "http" && scheme != "https" {
		return invalid("callback_url must be an absolute http or https URL")
	}
	if u.User != nil {
		return invalid("callback_url must not hold credentials (user:password@); the platform signs its callbacks instead")
	}
	host := u.Hostname()
	if host == "" {
		return invalid("callback_url has no host")
	}
	port := 80
	if scheme == "https" {
		port = 443
	}
	if ps := u.Port(); ps != "" {
		n, err := strconv.Atoi(ps)
		if err != nil || n < 1 || n > 65535 {
			return invalid("callback_url has a bad port %q", ps)
		}
		port = n
	}
	forbidden := func(re *RefusedError, why string) error {
		return &URLError{Reason: "forbidden", Msg: "callback_url is not allowed: " + why +
			"; callbacks may only reach public addresses unless the operator allows the target (EGRESS_ALLOW)"}
	}
	if a, err := netip.ParseAddr(host); err == nil {
		var re *RefusedError
		if err := p.Check(a, port); errors.As(err, &re) {
			return forbidden(re, re.Error())
		}
		return nil
	}
	name := strings.TrimSuffix(strings.ToLower(host), ".")
	if a, ok := ParseNumericHost(name); ok {
		var re *RefusedError
		if err := p.Check(a, port); errors.As(err, &re) {
			return forbidden(re, fmt.Sprintf("%q is the address %s, %s", host, a, re.Why))
		}
		return nil
	}
	if name == "" {
		return invalid("callback_url has no host")
	}
	if p.AllowsName(name, port) {
		return nil
	}
	if resolver == nil {
		resolver = net.DefaultResolver
	}
	ctx, cancel := context.WithTimeout(ctx, ResolveTimeout)
	defer cancel()
	addrs, err := resolver.LookupNetIP(ctx, "ip", name)
	if err != nil || len(addrs) == 0 {
		return &URLError{Reason: "resolve", Msg: fmt.Sprintf("callback_url's host %s does not resolve to an address", host)}
	}
	for _, a := range addrs {
		var re *RefusedError
		if err := p.Check(a, port); errors.As(err, &re) {
			return forbidden(re, fmt.Sprintf("%s resolves to %s, %s", host, re.Addr, re.Why))
		}
	}
	return nil
}
