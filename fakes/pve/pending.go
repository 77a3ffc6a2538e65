package pve

import "sort"

// handlePending: GET /nodes/{node}/qemu/{vmid}/pending (qemu-server src/PVE/API2/Qemu.pm
// 'vm_pending'): load_config (the parsed config with its digest), cipassword masked, then
// pve-guest-common PVE::GuestHelpers::config_with_pending_array: one {key, value} per option,
// pending/delete entries for pending changes. The fake applies every change at once, so there are
// never pending entries. PVE answers in hash order; the fake sorts by key.
func handlePending(s *Server, c *call) (any, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	v, err := s.vmOn(c.vars["node"], c.vmid())
	if err != nil {
		return nil, err
	}
	conf := coerceConfig(v.conf)
	keys := sortedKeys(conf)
	sort.Strings(keys)
	out := make([]map[string]any, 0, len(keys))
	for _, k := range keys {
		out = append(out, map[string]any{"key": k, "value": conf[k]})
	}
	return out, nil
}
