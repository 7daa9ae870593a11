package netguard

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strconv"
	"strings"
)

// denied lists the address ranges scripts and callbacks may not reach unless an operator allows them. Each range is
// named in the refusal ("127.0.0.1 is a loopback address"), so a script's author sees why; hint says whether
// the refusal also names the EGRESS_ALLOW entry that would allow the target (not for the metadata and
// credential endpoints, nor for ranges no real service lives in).
var denied = []struct {
	prefix netip.Prefix
	why    string
	hint   bool
}{
	{netip.MustParsePrefix("0.0.0.0/8"), "an address of the 'this network' range (0.0.0.0/8)", false},
	{netip.MustParsePrefix("10.0.0.0/8"), "a private address (10.0.0.0/8)", true},
	{netip.MustParsePrefix("100.64.0.0/10"), "a carrier-grade NAT address (100.64.0.0/10)", true},
	{netip.MustParsePrefix("127.0.0.0/8"), "a loopback address", true},
	{netip.MustParsePrefix("169.254.0.0/16"), "a link-local address, where cloud metadata and credential endpoints live (169.254.0.0/16)", false},
	{netip.MustParsePrefix("172.16.0.0/12"), "a private address (172.16.0.0/12)", true},
	{netip.MustParsePrefix("192.0.0.0/24"), "an address of the IETF protocol assignments (192.0.0.0/24)", false},
	{netip.MustParsePrefix("192.0.2.0/24"), "a documentation address (192.0.2.0/24)", false},
	{netip.MustParsePrefix("192.168.0.0/16"), "a private address (192.168.0.0/16)", true},
	{netip.MustParsePrefix("198.18.0.0/15"), "a benchmarking address (198.18.0.0/15)", true},
	{netip.MustParsePrefix("198.51.100.0/24"), "a documentation address (198.51.100.0/24)", false},
	{netip.MustParsePrefix("203.0.113.0/24"), "a documentation address (203.0.113.0/24)", false},
	{netip.MustParsePrefix("224.0.0.0/4"), "a multicast address (224.0.0.0/4)", false},
	{netip.MustParsePrefix("240.0.0.0/4"), "a reserved or broadcast address (240.0.0.0/4)", false},
	{netip.MustParsePrefix("::/128"), "the unspecified address (::/128)", false},
	{netip.MustParsePrefix("::1/128"), "a loopback address", true},
	{netip.MustParsePrefix("::/96"), "an IPv4-compatible address (::/96)", false},
	{netip.MustParsePrefix("64:ff9b:1::/48"), "a local-use NAT64 address (64:ff9b:1::/48)", true},
	{netip.MustParsePrefix("100::/64"), "a discard address (100::/64)", false},
	{netip.MustParsePrefix("2001:db8::/32"), "a documentation address (2001:db8::/32)", false},
	{netip.MustParsePrefix("fd00:ec2::254/128"), "the EC2 IPv6 metadata endpoint", false},
	{netip.MustParsePrefix("fc00::/7"), "a unique local address (fc00::/7)", true},
	{netip.MustParsePrefix("fe80::/10"), "a link-local address (fe80::/10)", false},
	{netip.MustParsePrefix("ff00::/8"), "a multicast address (ff00::/8)", false},
}

// Policy decides which destinations scripts (the worker's egress proxy) and job callbacks (the gateway
// and the webhook deliverer) may reach: any public address, and nothing in the denied ranges
// unless an allow rule names it.
type Policy struct {
	allow []rule
}

// rule is one EGRESS_ALLOW entry: a host name (exact, or ".suffix" for its subdomains), an address or a
// range, optionally with a port.
type rule struct {
	name   string // lower case, without a trailing dot; starts with "." for a suffix
	prefix netip.Prefix
	port   int // 0: any
	text   string
}

// ParsePolicy reads an allow list: entries separated by commas or spaces, each a host name
// ("internal.example.com"), a domain suffix (".corp.example.com"), an address ("10.1.2.3", "fd00::1") or a
// range ("10.0.0.0/8"), optionally followed by a port ("10.1.2.3:8080", "[fd00::1]:443",
// "internal.example.com:443"). An empty list allows public addresses only.
func ParsePolicy(allow string) (Policy, error) {
	var p Policy
	var errs []error
	for _, entry := range strings.FieldsFunc(allow, func(r rune) bool { return r == ',' || r == ' ' || r == '\t' || r == '\n' }) {
		r, err := parseRule(entry)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		p.allow = append(p.allow, r)
	}
	return p, errors.Join(errs...)
}

func parseRule(entry string) (rule, error) {
	r := rule{text: entry}
	host := entry
	if h, port, err := net.SplitHostPort(entry); err == nil {
		n, perr := strconv.Atoi(port)
		if perr != nil || n < 1 || n > 65535 {
			return r, fmt.Errorf("EGRESS_ALLOW entry %q: bad port %q", entry, port)
		}
		host, r.port = h, n
	}
	if pfx, err := netip.ParsePrefix(host); err == nil {
		r.prefix = pfx.Masked()
		return r, nil
	}
	if addr, err := netip.ParseAddr(host); err == nil {
		addr = addr.Unmap()
		r.prefix = netip.PrefixFrom(addr, addr.BitLen())
		return r, nil
	}
	name := strings.TrimSuffix(strings.ToLower(host), ".")
	if name == "" || name == "." || strings.ContainsAny(name, "/[]:@ ") {
		return r, fmt.Errorf("EGRESS_ALLOW entry %q is not a host name, address or range", entry)
	}
	r.name = name
	return r, nil
}

// String lists the allow rules.
func (p Policy) String() string {
	texts := make([]string, len(p.allow))
	for i, r := range p.allow {
		texts[i] = r.text
	}
	return strings.Join(texts, ",")
}

// AllowsName reports whether an allow rule names host (already lower case, no trailing dot) at port.
func (p Policy) AllowsName(host string, port int) bool {
	for _, r := range p.allow {
		if r.name == "" || (r.port != 0 && r.port != port) {
			continue
		}
		if host == r.name || (strings.HasPrefix(r.name, ".") && strings.HasSuffix(host, r.name)) {
			return true
		}
	}
	return false
}

// Check reports why addr:port may not be reached (a *RefusedError), or nil.
func (p Policy) Check(addr netip.Addr, port int) error {
	addr = addr.Unmap()
	for _, r := range p.allow {
		if r.prefix.IsValid() && r.prefix.Contains(addr) && (r.port == 0 || r.port == port) {
			return nil
		}
	}
	if embedded, ok := embeddedIPv4(addr); ok {
		var inner *RefusedError
		if err := p.Check(embedded, port); errors.As(err, &inner) {
			return &RefusedError{Addr: addr, Why: fmt.Sprintf("a form of %s, %s", embedded, inner.Why), Hint: inner.Hint}
		}
	}
	for _, d := range denied {
		if d.prefix.Contains(addr) {
			return &RefusedError{Addr: addr, Why: d.why, Hint: d.hint}
		}
	}
	return nil
}

// embeddedIPv4 returns the IPv4 address inside NAT64 (64:ff9b::/96) and 6to4 (2002::/16) addresses.
func embeddedIPv4(a netip.Addr) (netip.Addr, bool) {
	if !a.Is6() {
		return netip.Addr{}, false
	}
	b := a.As16()
	switch {
	case netip.MustParsePrefix("64:ff9b::/96").Contains(a):
		return netip.AddrFrom4([4]byte{b[12], b[13], b[14], b[15]}), true
	case netip.MustParsePrefix("2002::/16").Contains(a):
		return netip.AddrFrom4([4]byte{b[2], b[3], b[4], b[5]}), true
	}
	return netip.Addr{}, false
}

// RefusedError says which protected range an address lies in: "127.0.0.1 is a loopback address".
type RefusedError struct {
	Addr netip.Addr
	// Why names the range with its article: "a loopback address", "a private address (10.0.0.0/8)".
	Why string
	// Hint says whether the refusal may name the EGRESS_ALLOW entry that would allow the target (false for
	// the metadata and credential endpoints and for ranges no real service lives in).
	Hint bool
}

func (e *RefusedError) Error() string { return fmt.Sprintf("%s is %s", e.Addr, e.Why) }

// ParseNumericHost reads host as an IPv4 address in any form inet_aton accepts, which URL parsers and C
// resolvers honour: "2852039166", "0xA9FEA9FE", "0251.0376.0251.0376", "169.254.43518". It reports false
// for anything else (names, canonical addresses, IPv6).
func ParseNumericHost(host string) (netip.Addr, bool) {
	parts := strings.Split(host, ".")
	if len(parts) > 4 || host == "" {
		return netip.Addr{}, false
	}
	vals := make([]uint64, len(parts))
	for i, part := range parts {
		v, ok := parseInetAtonPart(part)
		if !ok {
			return netip.Addr{}, false
		}
		vals[i] = v
	}
	// All parts but the last are single bytes; the last fills the remaining bytes.
	var out uint64
	for i, v := range vals[:len(vals)-1] {
		if v > 0xff {
			return netip.Addr{}, false
		}
		out |= v << (8 * (3 - i))
	}
	last := vals[len(vals)-1]
	if last >= 1<<(8*(5-len(vals))) {
		return netip.Addr{}, false
	}
	out |= last
	return netip.AddrFrom4([4]byte{byte(out >> 24), byte(out >> 16), byte(out >> 8), byte(out)}), true
}

func parseInetAtonPart(s string) (uint64, bool) {
	base := 10
	switch {
	case s == "":
		return 0, false
	case strings.HasPrefix(s, "0x") || strings.HasPrefix(s, "0X"):
		base, s = 16, s[2:]
		if s == "" {
			return 0, true // "0x" is 0 to inet_aton
		}
	case len(s) > 1 && s[0] == '0':
		base, s = 8, s[1:]
	}
	v, err := strconv.ParseUint(s, base, 32)
	return v, err == nil
}
