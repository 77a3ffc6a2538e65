package provision

import (
	"fmt"
	"strings"

	"github.com/aimachine/aimachine/provision/pve"
)

// PVEConfig is the adapter configuration of o without contacting the server: the API URL
// (ending in /api2/json, loopback-only in simulator mode), TLS trust and credentials (a
// password login wins over a token, as in Connect). For callers that connect step by step
// (aimachine doctor reports reachability, TLS trust and credentials as separate checks).
func (o ConnOptions) PVEConfig() (pve.ConnConfig, error) {
	u, err := apiURL(o.Endpoint)
	if err != nil {
		return pve.ConnConfig{}, err
	}
	if o.Simulator {
		if err := requireLoopback(u); err != nil {
			return pve.ConnConfig{}, err
		}
	}
	cfg := pve.ConnConfig{URL: u, CAFile: o.CAFile, Fingerprint: o.Fingerprint, Insecure: o.Insecure,
		Timeout: o.Timeout, Logger: o.Logger, Username: o.Username, Password: o.Password}
	if o.Username != "" && o.Password != "" {
		return cfg, nil
	}
	if o.APIToken != "" {
		id, secret, ok := strings.Cut(o.APIToken, "=")
		if !ok || !strings.Contains(id, "!") || !strings.Contains(id, "@") || secret == "" {
			return pve.ConnConfig{}, fmt.Errorf("%s is not USER@REALM!TOKENID=SECRET", EnvAPIToken)
		}
		cfg.TokenID, cfg.TokenSecret = id, secret
	}
	return cfg, nil
}

// OwnedByAimachine reports whether a VM config carries aimachine's ownership marker (a VM
// aimachine created, which deploy converges and destroy may delete).
func OwnedByAimachine(cfg pve.Config) bool { return strings.Contains(cfg["description"], ownerMarker) }
