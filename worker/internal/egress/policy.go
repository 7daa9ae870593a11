package egress

import "github.com/scrapeplatform/platform/shared/netguard"

// The address policy is shared/netguard's: the gateway checks job callbacks with the same ranges and the
// same EGRESS_ALLOW list as this proxy checks scripts' connections.
type (
	// Policy decides which destinations scripts may reach (netguard.Policy).
	Policy = netguard.Policy
	// RefusedError says which protected range an address lies in (netguard.RefusedError).
	RefusedError = netguard.RefusedError
)

// ParsePolicy reads an EGRESS_ALLOW list (netguard.ParsePolicy).
func ParsePolicy(allow string) (Policy, error) { return netguard.ParsePolicy(allow) }
