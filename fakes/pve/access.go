package pve

import "strings"

// clientRoutes are the API methods other clients than go-proxmox need (the Telmate
// proxmox-api-go client of the Terraform provider, the web UI); buildRoutes appends them.
func clientRoutes() []*route {
	return []*route{
		{method: "GET", pattern: "/access/permissions", params: permissionsSchema, handler: handlePermissions,
			client:      "Telmate Client.getPermissionsRaw (after every create)",
			modelled:    "effective permissions: the default top-level paths (RPCEnvironment::get_effective_permissions) with every privilege for root@pam and its non-privsep tokens (Administrator), the token's privileges otherwise; `path` filter; another user's permissions need Sys.Audit on /access",
			notModelled: "ACL tree paths and pools (no ACLs are modelled), propagate 0"},
		{method: "GET", pattern: "/cluster/ha/resources/{sid}", params: haReadSchema, priv: "Sys.Audit", privOn: "/", handler: handleHAResourceRead,
			client:      "Telmate Client.ReadVMHA (every config read)",
			modelled:    "no HA resources: `no such resource 'vm:N'` for an existing VM, `unable to detect SID from VMID - VM/CT N does not exist`, `unable to parse service id 'x'`",
			notModelled: "configured HA resources (state, group, max_restart ...)"},
		{method: "GET", pattern: "/nodes/{node}/qemu/{vmid}/pending", params: emptySchema, priv: "VM.Audit", privOn: "/vms/{vmid}", handler: handlePending,
			client:      "Telmate VmRef.pendingChanges (after every update)",
			modelled:    "config_with_pending_array: {key, value} per option (digest included, cipassword masked), typed like GET config; missing VM → 500",
			notModelled: "pending values and pending deletes (the fake applies changes at once)"},
	}
}

// administratorPrivs is the Administrator role: every privilege of pve-access-control
// src/PVE/AccessControl.pm $privgroups plus Permissions.Modify ($valid_privs).
var administratorPrivs = []string{
	"VM.Config.Disk", "VM.Config.CPU", "VM.Config.Memory", "VM.Config.Network", "VM.Config.HWType",
	"VM.Config.Options", "VM.Allocate", "VM.Clone", "VM.GuestAgent.Unrestricted", "VM.Migrate",
	"VM.Replicate", "VM.Snapshot", "VM.Snapshot.Rollback", "VM.Config.CDROM", "VM.Config.Cloudinit",
	"VM.Console", "VM.Backup", "VM.GuestAgent.FileRead", "VM.GuestAgent.FileSystemMgmt",
	"VM.GuestAgent.FileWrite", "VM.PowerMgmt", "VM.Audit", "VM.GuestAgent.Audit",
	"Sys.PowerMgmt", "Sys.Modify", "Sys.Incoming", "Sys.AccessNetwork", "Sys.Console", "Sys.Syslog", "Sys.Audit",
	"Datastore.Allocate", "Datastore.AllocateTemplate", "Datastore.AllocateSpace", "Datastore.Audit",
	"SDN.Allocate", "SDN.Audit", "SDN.Use",
	"Realm.Allocate", "User.Modify", "Group.Allocate", "Realm.AllocateUser",
	"Pool.Allocate", "Pool.Audit",
	"Mapping.Modify", "Mapping.Use", "Mapping.Audit",
	"Permissions.Modify",
}

// effectivePermissionPaths are the default paths of RPCEnvironment::get_effective_permissions.
var effectivePermissionPaths = []string{"/", "/access", "/access/groups", "/nodes", "/pool", "/sdn", "/storage", "/vms"}

var permissionsSchema = schema{fixed: map[string]pspec{
	"userid": {t: tString},
	"path":   {t: tString},
}}

// handlePermissions: GET /access/permissions (pve-access-control src/PVE/API2/AccessControl.pm
// 'permissions'): a user may dump its own permissions and those of its tokens, others need
// Sys.Audit on /access; `path` limits the answer to that path ({} when there is nothing).
func handlePermissions(s *Server, c *call) (any, error) {
	authid := c.id.authUser()
	userid := c.p.get("userid")
	if userid == "" {
		userid = authid
	}
	owner, _, _ := strings.Cut(userid, "!")
	if userid != authid && owner != authid && !c.id.has("Sys.Audit") {
		return nil, errPerm("/access", "Sys.Audit")
	}
	s.mu.Lock()
	target := s.identityOf(userid)
	s.mu.Unlock()
	privs := map[string]int{}
	if target != nil {
		list := target.privs
		if target.all {
			list = administratorPrivs
		}
		for _, p := range list {
			privs[p] = 1
		}
	}
	res := map[string]any{}
	paths := effectivePermissionPaths
	if p := c.p.get("path"); p != "" {
		paths = []string{p}
	}
	if len(privs) > 0 {
		for _, p := range paths {
			res[p] = privs
		}
	}
	return res, nil
}

// identityOf is the identity of a user or "user!token" id (nil when unknown). Called with s.mu held.
func (s *Server) identityOf(id string) *identity {
	user, tokenID, isToken := strings.Cut(id, "!")
	u := s.userIdentity(user)
	if u == nil || !isToken {
		return u
	}
	tok, ok := s.st.tokens[id]
	if !ok {
		return nil
	}
	u.tokenID = tokenID
	if tok.Privsep {
		u.all, u.privs = false, tok.Privs
	}
	return u
}
