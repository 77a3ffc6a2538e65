package pve

// clientRoutes are the API methods other clients than go-proxmox need (the Telmate
// proxmox-api-go client of the Terraform provider, the web UI); buildRoutes appends them.
func clientRoutes() []*route {
	return []*route{
		{method: "GET", pattern: "/access/permissions", handler: handlePermissions,
			client:      "Telmate Client.getPermissionsRaw (after every create); aimachine doctor",
			modelled:    "effective privileges per path (propagate 1/0) from users, tokens (privilege separation: intersection with the user), ACLs with propagation and built-in roles (acl.go); the default top-level paths and every ACL path; `path`, `userid` (other users need Sys.Audit on /access)",
			notModelled: "groups, pools"},
		{method: "GET", pattern: "/cluster/ha/resources/{sid}", priv: "Sys.Audit", privOn: "/", handler: handleHAResourceRead,
			client:      "Telmate Client.ReadVMHA (every config read)",
			modelled:    "no HA resources: `no such resource 'vm:N'` for an existing VM, `unable to detect SID from VMID - VM/CT N does not exist`, `unable to parse service id 'x'`",
			notModelled: "configured HA resources (state, group, max_restart ...)"},
		{method: "GET", pattern: "/nodes/{node}/qemu/{vmid}/pending", priv: "VM.Audit", privOn: "/vms/{vmid}", handler: handlePending,
			client:      "Telmate VmRef.pendingChanges (after every update)",
			modelled:    "config_with_pending_array: {key, value} per option (digest included, cipassword masked), typed like GET config; missing VM → 500",
			notModelled: "pending values and pending deletes (the fake applies changes at once)"},
	}
}

// administratorPrivs is the Administrator role (every privilege, Permissions.Modify included).
var administratorPrivs = AllPrivileges()
