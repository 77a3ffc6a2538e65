package pve

import (
	"crypto/tls"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"
)

// jsEscape is ECMAScript's global escape(), which proxmox-widget-toolkit src/Toolkit.js
// Ext.util.Cookies.set applies to the ticket before it writes document.cookie.
func jsEscape(s string) string {
	var b strings.Builder
	for _, c := range []byte(s) {
		switch {
		case c >= 'A' && c <= 'Z', c >= 'a' && c <= 'z', c >= '0' && c <= '9', strings.IndexByte("@*_+-./", c) >= 0:
			b.WriteByte(c)
		default:
			fmt.Fprintf(&b, "%%%02X", c)
		}
	}
	return b.String()
}

// uiRow is one request shaped like the web UI's: ExtJS Ajax to /api2/extjs with form bodies
// (application/x-www-form-urlencoded; charset=UTF-8), the ticket in the PVEAuthCookie cookie and
// the CSRFPreventionToken header (proxmox-widget-toolkit src/Utils.js 'beforerequest' hook,
// Proxmox.Utils.setAuthData). Every expectation names the Proxmox source it comes from.
type uiRow struct {
	name, src    string
	method, path string
	form         string
	// auth: "cookie+csrf", "cookie" (no CSRF header), "cookie+badcsrf", "header+csrf" (ticket in
	// Authorization), "cookies+csrf" (other cookies first), "tampered", "badcookie+token", "token",
	// "user+csrf" (ticket of ui@pve), "none"
	auth string
	// status is PVE's status; raw: the answer comes before any formatter (auth_handler, AnyEvent
	// checks) as a bare HTTP status with the reason, otherwise the extjs formatter answers
	// HTTP 200 with success 0, status and message (Formatter/Standard.pm prepare_response_data)
	status int
	raw    bool
	errs   bool // the extjs answer carries the per-parameter errors object
	reason string
	check  func(t *testing.T, data any)
}

func TestWebUIRequests(t *testing.T) {
	tp := DefaultTopology()
	tp.Users = append(tp.Users, UserSpec{ID: "ui@pve", Password: "ui-user-pw", Privs: []string{"VM.Audit"}})
	tp.VMs = []VMSpec{{Node: "pve", VMID: 120, Config: map[string]string{"name": "ui", "memory": "2048", "cores": "2", "machine": "q35"}}}
	e := newEnv(t, WithTopology(tp), WithGuestFactory(NewStaticGuestFactory()))
	hc := &http.Client{Timeout: 20 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: e.s.CertPool()}}}

	do := func(method, path, form string, hdr http.Header) (*http.Response, map[string]any) {
		t.Helper()
		var body io.Reader
		if form != "" {
			body = strings.NewReader(form)
		}
		req, err := http.NewRequest(method, e.ts.URL+"/api2/extjs"+path, body)
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("Accept", "application/json") // Utils.js Ext.Ajax.defaultHeaders
		if form != "" {
			req.Header.Set("Content-Type", "application/x-www-form-urlencoded; charset=UTF-8")
		}
		for k, v := range hdr {
			req.Header[k] = v
		}
		res, err := hc.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer res.Body.Close()
		raw, _ := io.ReadAll(res.Body)
		var m map[string]any
		_ = json.Unmarshal(raw, &m)
		return res, m
	}
	login := func(user, realm, pw string) (string, string) {
		t.Helper()
		// manager6 window/LoginWindow.js: creds (username, password, realm) + 'new-format' = 1
		form := url.Values{"username": {user}, "password": {pw}, "realm": {realm}, "new-format": {"1"}}.Encode()
		res, m := do("POST", "/access/ticket", form, nil)
		if res.StatusCode != 200 {
			t.Fatalf("login %s: %s", user, res.Status)
		}
		d := m["data"].(map[string]any)
		return d["ticket"].(string), d["CSRFPreventionToken"].(string)
	}
	ticket, csrf := login("root", "pam", DefaultRootPassword)
	uTicket, uCSRF := login("ui", "pve", "ui-user-pw")
	tamper := ticket[:len(ticket)-4] + "AAAA"
	// the edit windows load the config first and send its digest back (proxmox-widget-toolkit
	// src/window/Edit.js: values.digest = me.digest)
	_, cfg := do("GET", "/nodes/pve/qemu/120/config", "", http.Header{"Cookie": {"PVEAuthCookie=" + jsEscape(ticket)}})
	digest, _ := cfg["data"].(map[string]any)["digest"].(string)

	headers := func(auth string) http.Header {
		h := http.Header{}
		switch auth {
		case "cookie+csrf", "cookie", "cookie+badcsrf":
			h.Set("Cookie", "PVEAuthCookie="+jsEscape(ticket))
		case "cookies+csrf":
			h.Set("Cookie", "PVELangCookie=en; PVEAuthCookie="+jsEscape(ticket))
		case "header+csrf":
			h.Set("Authorization", "PVEAuthCookie="+ticket)
		case "tampered":
			h.Set("Cookie", "PVEAuthCookie="+jsEscape(tamper))
		case "badcookie+token":
			h.Set("Cookie", "PVEAuthCookie="+jsEscape(tamper))
			h.Set("Authorization", "PVEAPIToken="+DefaultTokenID+"="+DefaultTokenSecret)
		case "token":
			h.Set("Authorization", "PVEAPIToken="+DefaultTokenID+"="+DefaultTokenSecret)
		case "user+csrf":
			h.Set("Cookie", "PVEAuthCookie="+jsEscape(uTicket))
			h.Set("CSRFPreventionToken", uCSRF)
		}
		switch auth {
		case "cookie+csrf", "cookies+csrf", "header+csrf":
			h.Set("CSRFPreventionToken", csrf)
		case "cookie+badcsrf":
			h.Set("CSRFPreventionToken", "6B1480C7:"+strings.Repeat("A", 43))
		}
		return h
	}
	upidTask := func(typ string) func(t *testing.T, d any) {
		return func(t *testing.T, d any) {
			upid, _ := d.(string)
			if !strings.Contains(upid, ":"+typ+":") {
				t.Fatalf("data %v, want a %s UPID", d, typ)
			}
			if ex, err := e.s.WaitTask(upid, 10*time.Second); err != nil || ex != "OK" {
				t.Fatalf("task %s: %q %v", upid, ex, err)
			}
		}
	}
	rows := []uiRow{
		{name: "login with user and realm fields", src: "AccessControl.pm create_ticket: $username .= \"\\@$param->{realm}\"",
			method: "POST", path: "/access/ticket", form: "username=root&password=" + url.QueryEscape(DefaultRootPassword) + "&realm=pam&new-format=1",
			auth: "none", status: 200, check: func(t *testing.T, d any) {
				m := d.(map[string]any)
				if m["username"] != "root@pam" || !strings.HasPrefix(m["ticket"].(string), "PVE:root@pam:") {
					t.Errorf("login %v", m)
				}
			}},
		{name: "realm appended to a full user id", src: "AccessControl.pm create_ticket: realm appended whenever given; failure is PVE::Exception 'authentication failure', code 401",
			method: "POST", path: "/access/ticket", form: "username=root%40pam&password=" + url.QueryEscape(DefaultRootPassword) + "&realm=pam",
			auth: "none", status: 401, reason: "authentication failure"},
		{name: "root ticket renews a ticket for another user", src: "AccessControl.pm create_ticket_do: root@pam can create tickets for other users",
			method: "POST", path: "/access/ticket", form: "username=ui%40pve&password=" + url.QueryEscape(ticket),
			auth: "none", status: 200, check: func(t *testing.T, d any) {
				if u := d.(map[string]any)["username"]; u != "ui@pve" {
					t.Errorf("username %v", u)
				}
			}},
		{name: "GET with the cookie needs no CSRF token", src: "pve-manager PVE/HTTPServer.pm auth_handler: CSRF check only if $method ne 'GET'",
			method: "GET", path: "/nodes/pve/qemu/120/config", auth: "cookie", status: 200, check: func(t *testing.T, d any) {
				if d.(map[string]any)["name"] != "ui" {
					t.Errorf("config %v", d)
				}
			}},
		{name: "POST with the cookie and no CSRF token", src: "pve-common src/PVE/Ticket.pm verify_csrf_prevention_token: raise 'Permission denied - invalid csrf token', code HTTP_UNAUTHORIZED",
			method: "POST", path: "/nodes/pve/qemu/120/status/start", auth: "cookie", status: 401, raw: true, reason: "Permission denied - invalid csrf token"},
		{name: "POST with a forged CSRF token", src: "pve-common src/PVE/Ticket.pm verify_csrf_prevention_token (signature mismatch)",
			method: "POST", path: "/nodes/pve/qemu/120/status/start", auth: "cookie+badcsrf", status: 401, raw: true, reason: "Permission denied - invalid csrf token"},
		{name: "PUT config as a form", src: "proxmox-widget-toolkit src/window/Edit.js: method PUT, params with digest; qemu-server API2/Qemu.pm update_vm (sync PUT returns null)",
			method: "PUT", path: "/nodes/pve/qemu/120/config", form: "description=set+from+the+UI&memory=3072&delete=ostype&digest=" + digest,
			auth: "cookie+csrf", status: 200, check: func(t *testing.T, d any) {
				if d != nil {
					t.Errorf("data %v, want null", d)
				}
			}},
		{name: "the same digest again is stale", src: "qemu-server API2/Qemu.pm $update_vm_api $load_and_check_config: die \"checksum mismatch (file change by other user?)\\n\" if $digest && $digest ne $conf->{digest}",
			method: "PUT", path: "/nodes/pve/qemu/120/config", form: "description=again&digest=" + digest, auth: "cookie+csrf", status: 500,
			reason: "checksum mismatch (file change by other user?)"},
		{name: "config read back typed", src: "qemu-server API2/Qemu.pm vm_config (memory is a string property: memory-size format)",
			method: "GET", path: "/nodes/pve/qemu/120/config", auth: "cookie", status: 200, check: func(t *testing.T, d any) {
				m := d.(map[string]any)
				if m["description"] != "set from the UI" || m["memory"] != "3072" || m["cores"] != 2.0 {
					t.Errorf("config %v", m)
				}
			}},
		{name: "start with cookie and CSRF", src: "manager6 qemu/Config.js vm_command: POST base_url + '/status/' + cmd; qemu-server API2/Qemu.pm vm_start returns the worker UPID",
			method: "POST", path: "/nodes/pve/qemu/120/status/start", auth: "cookie+csrf", status: 200, check: upidTask("qmstart")},
		{name: "ticket in the Authorization header", src: "pve-http-server AnyEvent.pm: 'fallback to cookie in Authorization header'",
			method: "POST", path: "/nodes/pve/qemu/120/status/stop", auth: "header+csrf", status: 200, check: upidTask("qmstop")},
		{name: "other cookies before the ticket", src: "pve-http-server Formatter.pm extract_auth_value: /(?:^|\\s)PVEAuthCookie(?:=| )([^;]*)/",
			method: "GET", path: "/version", auth: "cookies+csrf", status: 200},
		{name: "no credentials", src: "pve-manager PVE/HTTPServer.pm auth_handler: die \"No ticket\\n\" if !$ticket",
			method: "GET", path: "/nodes", auth: "none", status: 401, raw: true, reason: "No ticket"},
		{name: "tampered ticket", src: "pve-manager PVE/HTTPServer.pm auth_handler: verify_ticket fails -> die \"Authentication failed!\\n\"",
			method: "GET", path: "/nodes", auth: "tampered", status: 401, raw: true, reason: "Authentication failed!"},
		{name: "a cookie wins over a valid API token", src: "pve-http-server AnyEvent.pm: 'prefer actual cookie'; the token is read only if no ticket was found",
			method: "GET", path: "/nodes", auth: "badcookie+token", status: 401, raw: true, reason: "Authentication failed!"},
		{name: "API token writes need no CSRF token", src: "pve-manager PVE/HTTPServer.pm auth_handler: CSRF skipped with $api_token",
			method: "POST", path: "/nodes/pve/qemu/120/status/start", auth: "token", status: 200, check: upidTask("qmstart")},
		{name: "user without VM.PowerMgmt", src: "qemu-server API2/Qemu.pm vm_stop: check => ['perm', '/vms/{vmid}', ['VM.PowerMgmt']]; pve-common Exception.pm raise_perm_exc: 'Permission check failed ($path, $priv)', HTTP_FORBIDDEN",
			method: "POST", path: "/nodes/pve/qemu/120/status/stop", auth: "user+csrf", status: 403, reason: "Permission check failed (/vms/120, VM.PowerMgmt)"},
		{name: "another user's permissions need Sys.Audit on /access", src: "pve-access-control API2/AccessControl.pm permissions: $rpcenv->check($rpcenv->get_user(), '/access', ['Sys.Audit'])",
			method: "GET", path: "/access/permissions?userid=root%40pam", auth: "user+csrf", status: 403, reason: "Permission check failed (/access, Sys.Audit)"},
		{name: "root's own permissions", src: "pve-access-control RPCEnvironment.pm permissions: root@pam has the Administrator role ($valid_privs: every privilege + Permissions.Modify)",
			method: "GET", path: "/access/permissions?path=%2Fvms%2F120", auth: "cookie", status: 200, check: func(t *testing.T, d any) {
				m := d.(map[string]any)
				p, _ := m["/vms/120"].(map[string]any)
				if len(m) != 1 || p["Permissions.Modify"] != 1.0 || p["VM.PowerMgmt"] != 1.0 || len(p) != len(administratorPrivs) {
					t.Errorf("permissions %v", m)
				}
			}},
		{name: "parameter error in the extjs format", src: "pve-http-server Formatter/Standard.pm prepare_response_data: errors -> success 0; extjs: message + status, HTTP 200",
			method: "GET", path: "/cluster/nextid?vmid=abc", auth: "cookie", status: 400, reason: "Parameter verification failed.", errs: true},
		{name: "unknown method in the extjs format", src: "pve-manager PVE/HTTPServer.pm rest_handler: HTTP_NOT_IMPLEMENTED \"Method '$method $rel_uri' not implemented\" (formatted like any handler result)",
			method: "GET", path: "/nodes/pve/foo", auth: "cookie", status: 501, reason: "Method 'GET /nodes/pve/foo' not implemented"},
	}
	for _, r := range rows {
		res, m := do(r.method, r.path, r.form, headers(r.auth))
		t.Run(r.name, func(t *testing.T) {
			t.Logf("source: %s", r.src)
			if r.raw {
				if want := fmt.Sprintf("%d %s", r.status, r.reason); res.Status != want || m != nil {
					t.Fatalf("status line %q (body %v), want %q and no body", res.Status, m, want)
				}
				return
			}
			if res.StatusCode != 200 {
				t.Fatalf("status %q: the extjs format always answers 200", res.Status)
			}
			if r.status >= 400 {
				if m["success"] != 0.0 || m["status"] != float64(r.status) || m["message"] != r.reason+"\n" {
					t.Fatalf("extjs error %v, want success 0, status %d, message %q", m, r.status, r.reason)
				}
				if _, has := m["errors"].(map[string]any); has != r.errs {
					t.Fatalf("errors object in %v: %v, want %v", m, has, r.errs)
				}
				return
			}
			if m["success"] != 1.0 {
				t.Fatalf("extjs answer %v: success must be 1", m)
			}
			if r.check != nil {
				r.check(t, m["data"])
			}
		})
	}
}
