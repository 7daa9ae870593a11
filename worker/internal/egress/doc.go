// Package egress is the worker's egress proxy: an HTTP forward proxy on a loopback port that scripts get as
// http_proxy and https_proxy, and that reaches public addresses only.
//
// It exists for server-side request forgery. Scripts fetch URLs that API callers choose; without it, a caller
// could point one at the cloud's metadata and credential endpoints (169.254.169.254, the ECS task endpoint
// 169.254.170.2, fd00:ec2::254), at the worker's own admin ports on loopback, or at private networks.
//
// For every request (and every CONNECT tunnel) the proxy:
//
//   - reads the host as an address in any spelling inet_aton accepts (2852039166, 0xA9FEA9FE,
//     0251.0376.0251.0376, 169.254.43518), as an IPv6 literal (IPv4-mapped, NAT64 and 6to4 forms checked
//     for the IPv4 address they embed), or resolves it as a name;
//   - refuses with 403 if any of the addresses lies in a protected range (loopback, private, link-local,
//     unique-local, carrier-grade NAT, multicast, reserved, documentation ranges), naming the range, and for
//     ranges where real services live, the EGRESS_ALLOW entry that would allow the target; a name that does
//     not resolve is a 502 that says so, not a permission problem;
//   - otherwise connects to one of the addresses it checked, never resolving again, so a DNS answer that
//     changes between check and connect (rebinding) cannot slip a private address in.
//
// Every refusal is one sentence ("egress proxy refused 127.0.0.1:8765: 127.0.0.1 is a loopback address; to
// allow it, run the worker with EGRESS_ALLOW=127.0.0.1:8765") written where each HTTP library looks: the
// status line's reason phrase (which the exception of a refused CONNECT carries), the X-Egress-Refused or
// X-Egress-Error header and the body. A run that names itself in the proxy URL (RunProxyURL) can have its
// last refusal looked up by the worker (Proxy.Refusal), for scripts that swallow the error.
//
// The proxy caps its client connections (Config.MaxConns, 256: the one over is answered 503 at once) and
// closes clients that send no complete header in time or stay idle.
//
// Redirects are new requests through the proxy and are checked the same way. Operators who need private
// targets list them in EGRESS_ALLOW (see ParsePolicy): host names, domain suffixes, addresses or ranges,
// optionally with a port.
//
// What it is not: a network sandbox. A script that ignores the proxy variables (or opens a raw socket)
// connects directly. Enforcing egress against hostile scripts needs the network's help: a security group
// or network policy, or a per-task network namespace with only the proxy reachable.
package egress
