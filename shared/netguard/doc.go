// Package netguard is the platform's server-side request forgery guard: the address ranges no script and no
// job callback may reach (loopback, private, link-local with the cloud metadata endpoints, …) unless an
// operator allows them in EGRESS_ALLOW, and the parsing of that allow list. The worker's egress proxy
// applies it to every connection a script opens; the gateway applies it to a job's callback_url at
// submission (CheckURL), and the webhook deliverer again at each delivery, since a name may resolve
// elsewhere later.
package netguard
