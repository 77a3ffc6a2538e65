package pve

import (
	"regexp"
	"strconv"
)

// No HA resources are modelled (/etc/pve/ha/resources.cfg is empty): reading one answers as
// pve-ha-manager does for a resource that is not configured.

var (
	reHASidVMID = regexp.MustCompile(`^(\d+)$`)
	reHASidFull = regexp.MustCompile(`^(\S+):(\S+)$`)
)

// handleHAResourceRead: GET /cluster/ha/resources/{sid} (pve-ha-manager src/PVE/API2/HA/Resources.pm
// 'read'): PVE::HA::Config::parse_sid turns a VMID into "vm:N" ("unable to detect SID from VMID -
// VM/CT N does not exist" when there is none), then $api_copy_config dies "no such resource
// 'vm:N'" for an unconfigured resource. parse_sid's "unable to parse service id" cannot happen
// through the API: the sid format (pve_verify_ha_resource_or_vm_id) rejects those values first.
func handleHAResourceRead(s *Server, c *call) (any, error) {
	sid := c.vars["sid"]
	switch {
	case reHASidVMID.MatchString(sid):
		n, _ := strconv.Atoi(sid)
		s.mu.Lock()
		_, ok := s.st.vms[n]
		s.mu.Unlock()
		if !ok {
			return nil, errDie("unable to detect SID from VMID - VM/CT %s does not exist", sid)
		}
		sid = "vm:" + sid
	case reHASidFull.MatchString(sid):
	default:
		return nil, errDie("unable to parse service id '%s'", sid)
	}
	return nil, errDie("no such resource '%s'", sid)
}
