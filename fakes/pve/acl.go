package pve

import (
	"sort"
	"strings"
)

// ACLSpec is one ACL entry of /etc/pve/user.cfg ("acl:PROPAGATE:PATH:UGID:ROLE:"): Role on Path
// for a user or an API token.
type ACLSpec struct {
	Path string // "/", "/vms", "/storage/local", "/mapping/pci/gpu0", "/sdn/zones/localnetwork/vmbr0"
	// User is a user id ("aimachine@pve") or a full token id ("aimachine@pve!deploy").
	User string
	// Role is a built-in role (PVEVMAdmin, PVEDatastoreUser, PVEAuditor, PVEMappingUser,
	// PVESDNUser, Administrator, NoAccess ...) or a name of Topology.Roles.
	Role      string
	Propagate bool
}

// privGroups is PVE's privilege table by category and level (pve-access-control
// src/PVE/AccessControl.pm $privgroups, as of PVE 8.4: the commit before 0706945
// "privileges: drop VM.Monitor", which shipped with PVE 9).
var privGroups = []struct {
	cat                      string
	root, admin, user, audit []string
}{
	{"VM", nil,
		[]string{"VM.Config.Disk", "VM.Config.CPU", "VM.Config.Memory", "VM.Config.Network", "VM.Config.HWType", "VM.Config.Options",
			"VM.Allocate", "VM.Clone", "VM.GuestAgent.Unrestricted", "VM.Migrate", "VM.Monitor", "VM.Snapshot", "VM.Snapshot.Rollback"},
		[]string{"VM.Config.CDROM", "VM.Config.Cloudinit", "VM.Console", "VM.Backup", "VM.GuestAgent.FileRead",
			"VM.GuestAgent.FileSystemMgmt", "VM.GuestAgent.FileWrite", "VM.PowerMgmt"},
		[]string{"VM.Audit", "VM.GuestAgent.Audit"}},
	{"Sys", []string{"Sys.PowerMgmt", "Sys.Modify", "Sys.Incoming", "Sys.AccessNetwork"},
		[]string{"Sys.Console", "Sys.Syslog"}, nil, []string{"Sys.Audit"}},
	{"Datastore", nil, []string{"Datastore.Allocate", "Datastore.AllocateTemplate"},
		[]string{"Datastore.AllocateSpace"}, []string{"Datastore.Audit"}},
	{"SDN", nil, []string{"SDN.Allocate", "SDN.Audit"}, []string{"SDN.Use"}, []string{"SDN.Audit"}},
	{"User", []string{"Realm.Allocate"}, []string{"User.Modify", "Group.Allocate", "Realm.AllocateUser"}, nil, nil},
	{"Pool", nil, []string{"Pool.Allocate"}, []string{"Pool.Audit"}, []string{"Pool.Audit"}},
	{"Mapping", nil, []string{"Mapping.Modify"}, []string{"Mapping.Use"}, []string{"Mapping.Audit"}},
}

// builtinRoles are PVE's special roles, built like AccessControl.pm create_roles does:
// PVE<Cat>Admin = admin+user+audit, PVE<Cat>User = user+audit (when the category has user
// privileges), PVEAuditor = every audit privilege, PVEAdmin = every admin role minus
// Mapping.Modify, Administrator = every privilege ($valid_privs, with Permissions.Modify, which
// is in no group), NoAccess = none.
var builtinRoles = func() map[string]map[string]bool {
	r := map[string]map[string]bool{"NoAccess": {}, "Administrator": {"Permissions.Modify": true}, "PVEAdmin": {}, "PVEAuditor": {},
		"PVETemplateUser": {"VM.Clone": true, "VM.Audit": true}}
	add := func(role string, ps ...[]string) {
		if r[role] == nil {
			r[role] = map[string]bool{}
		}
		for _, l := range ps {
			for _, p := range l {
				r[role][p] = true
			}
		}
	}
	for _, g := range privGroups {
		add("Administrator", g.root, g.admin, g.user, g.audit)
		add("PVE"+g.cat+"Admin", g.admin, g.user, g.audit)
		add("PVEAdmin", g.admin, g.user, g.audit)
		if len(g.user) > 0 {
			add("PVE"+g.cat+"User", g.user, g.audit)
		}
		add("PVEAuditor", g.audit)
	}
	delete(r["PVEAdmin"], "Mapping.Modify")
	return r
}()

// AllPrivileges lists every privilege PVE 8.4 knows, sorted.
func AllPrivileges() []string { return sortedKeys(builtinRoles["Administrator"]) }

// rolePrivs resolves a role name; called with s.mu held.
func (s *Server) rolePrivs(role string) map[string]bool {
	if ps, ok := s.st.roles[role]; ok {
		m := map[string]bool{}
		for _, p := range ps {
			m[p] = true
		}
		return m
	}
	return builtinRoles[role]
}

// aclRoles walks the ACL tree from / to path for one principal, as AccessControl.pm roles()
// does: at each level an entry for the principal replaces what the levels above gave, and only
// entries on the final path or with propagate apply. Returns role -> propagate.
func (s *Server) aclRoles(principal, path string) map[string]bool {
	levels := []string{"/"}
	if path != "/" {
		acc := ""
		for _, seg := range strings.Split(strings.Trim(path, "/"), "/") {
			acc += "/" + seg
			levels = append(levels, acc)
		}
	}
	roles := map[string]bool{}
	for i, lvl := range levels {
		final := i == len(levels)-1
		var next map[string]bool
		for _, a := range s.st.acls {
			if a.User != principal || normACLPath(a.Path) != lvl {
				continue
			}
			if final || a.Propagate {
				if next == nil {
					next = map[string]bool{}
				}
				next[a.Role] = a.Propagate
			}
		}
		if next != nil {
			roles = next
		}
	}
	if p, ok := roles["NoAccess"]; ok {
		return map[string]bool{"NoAccess": p}
	}
	return roles
}

func normACLPath(p string) string {
	if p == "" || p == "/" {
		return "/"
	}
	return "/" + strings.Trim(p, "/")
}

func (s *Server) namedInACL(principal string) bool {
	for _, a := range s.st.acls {
		if a.User == principal {
			return true
		}
	}
	return false
}

// privsFromRoles turns role -> propagate into priv -> propagate (any propagating role wins).
func (s *Server) privsFromRoles(roles map[string]bool) map[string]bool {
	out := map[string]bool{}
	for role, prop := range roles {
		for p := range s.rolePrivs(role) {
			out[p] = out[p] || prop
		}
	}
	return out
}

func allPrivs() map[string]bool {
	m := map[string]bool{}
	for p := range builtinRoles["Administrator"] {
		m[p] = true
	}
	return m
}

// permissions is RPCEnvironment::permissions($authid, $path): privilege -> propagate flag for a
// user or token on path; called with s.mu held. root@pam has everything; a token without
// privilege separation has its user's privileges; a privsep token has its own ACLs intersected
// with its user's (not for root@pam's tokens), as compile_acl_path does.
func (s *Server) permissions(authid, path string) map[string]bool {
	path = normACLPath(path)
	if authid == "root@pam" {
		return allPrivs()
	}
	if user, tokenName, isToken := strings.Cut(authid, "!"); isToken {
		tok, ok := s.st.tokens[authid]
		if !ok || tokenName == "" {
			return map[string]bool{}
		}
		userPerms := s.permissions(user, path)
		if !tok.Privsep {
			return userPerms
		}
		privs := s.privsFromRoles(s.aclRoles(authid, path))
		for _, p := range tok.Privs { // shorthand: privileges on every path
			privs[p] = true
		}
		if user == "root@pam" {
			return privs
		}
		out := map[string]bool{}
		for p, prop := range privs {
			if up, ok := userPerms[p]; ok {
				out[p] = up && prop
			}
		}
		return out
	}
	u, ok := s.st.users[authid]
	if !ok {
		return map[string]bool{}
	}
	if u.Privs == nil && !s.namedInACL(authid) {
		return allPrivs() // legacy topologies: a user without Privs or ACLs may do everything
	}
	privs := s.privsFromRoles(s.aclRoles(authid, path))
	for _, p := range u.Privs {
		privs[p] = true
	}
	return privs
}

// routePermitted is a route's check: priv ("A|B" = any of them, check_any) on path.
func (s *Server) routePermitted(id *identity, path, priv string) bool {
	if path == "" {
		path = "/"
	}
	for _, p := range strings.Split(priv, "|") {
		if s.permitted(id, path, p) {
			return true
		}
	}
	return false
}

// permitted reports whether id holds priv on path.
func (s *Server) permitted(id *identity, path, priv string) bool {
	if id == nil {
		return false
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	_, ok := s.permissions(id.authUser(), path)[priv]
	return ok
}

// handlePermissions: GET /access/permissions (pve-access-control API2/AccessControl.pm
// 'permissions'): the caller's own (or an owned token's) effective privileges, another user's
// only with Sys.Audit on /access. With path: {path: privs} or {} when none; without: every
// default path (/, /access, /access/groups, /nodes, /pool, /sdn, /storage, /vms) and every
// ACL path, leaving out paths without privileges (RPCEnvironment get_effective_permissions).
// Values are the propagate flag, 1 or 0.
func handlePermissions(s *Server, c *call) (any, error) {
	authid := c.id.authUser()
	userid := authid
	if c.p.has("userid") {
		userid = c.p.get("userid")
	}
	owner, _, _ := strings.Cut(userid, "!")
	if userid != authid && owner != authid && !s.permitted(c.id, "/access", "Sys.Audit") {
		return nil, errPerm("/access", "Sys.Audit")
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	render := func(m map[string]bool) map[string]any {
		out := map[string]any{}
		for p, prop := range m {
			out[p] = b2i(prop)
		}
		return out
	}
	if path := c.p.get("path"); path != "" {
		perms := s.permissions(userid, path)
		if len(perms) == 0 {
			return map[string]any{}, nil
		}
		return map[string]any{path: render(perms)}, nil
	}
	paths := map[string]bool{"/": true, "/access": true, "/access/groups": true, "/nodes": true, "/pool": true, "/sdn": true, "/storage": true, "/vms": true}
	for _, a := range s.st.acls {
		paths[normACLPath(a.Path)] = true
	}
	out := map[string]any{}
	keys := sortedKeys(paths)
	sort.Strings(keys)
	for _, p := range keys {
		if perms := s.permissions(userid, p); len(perms) > 0 {
			out[p] = render(perms)
		}
	}
	return out, nil
}

// GrantACL adds an ACL entry (what `pveum acl modify PATH --roles ROLE --users/--tokens ID`
// does on a real host). A role that is neither built in nor in the topology is refused.
func (s *Server) GrantACL(a ACLSpec) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.rolePrivs(a.Role) == nil {
		return errf("role '%s' does not exist", a.Role)
	}
	if !strings.HasPrefix(a.Path, "/") {
		return errf("invalid ACL path '%s'", a.Path)
	}
	user, _, _ := strings.Cut(a.User, "!")
	if _, ok := s.st.users[user]; !ok {
		return errf("user '%s' does not exist", user)
	}
	if strings.Contains(a.User, "!") {
		if _, ok := s.st.tokens[a.User]; !ok {
			return errf("token '%s' does not exist", a.User)
		}
	}
	s.st.acls = append(s.st.acls, a)
	return nil
}
