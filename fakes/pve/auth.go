package pve

import (
	"crypto/hmac"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"fmt"
	"net/http"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"time"
)

// identity is the authenticated user of a request; its privileges come from the ACLs
// (Server.permissions, acl.go).
type identity struct {
	user    string // root@pam
	tokenID string // "aimachine" for root@pam!aimachine, "" for ticket logins
}

// authUser is the user PVE's permission code sees: the full token id for tokens.
func (id *identity) authUser() string {
	if id == nil {
		return ""
	}
	if id.tokenID != "" {
		return id.user + "!" + id.tokenID
	}
	return id.user
}

var reTokenAuth = regexp.MustCompile(`(?:^|\s)PVEAPIToken(?:=| )([^;]*)`)

const ticketLifetime = 2 * time.Hour

func (s *Server) sign(msg string) string {
	m := hmac.New(sha256.New, s.secret)
	m.Write([]byte(msg))
	return base64.StdEncoding.EncodeToString(m.Sum(nil))
}

func (s *Server) newTicket(user string) string {
	data := fmt.Sprintf("PVE:%s:%08X", user, time.Now().Unix())
	return data + "::" + s.sign(data)
}

// verifyTicket returns the ticket's user.
func (s *Server) verifyTicket(t string) (string, bool) {
	data, sig, ok := strings.Cut(t, "::")
	if !ok || !hmac.Equal([]byte(sig), []byte(s.sign(data))) {
		return "", false
	}
	parts := strings.Split(data, ":")
	if len(parts) != 3 || parts[0] != "PVE" {
		return "", false
	}
	ts, err := strconv.ParseInt(parts[2], 16, 64)
	if err != nil || time.Since(time.Unix(ts, 0)) > ticketLifetime {
		return "", false
	}
	return parts[1], true
}

func (s *Server) newCSRF(user string) string {
	ts := fmt.Sprintf("%08X", time.Now().Unix())
	return ts + ":" + s.sign(ts+":"+user)
}

func (s *Server) verifyCSRF(tok, user string) bool {
	ts, sig, ok := strings.Cut(tok, ":")
	return ok && hmac.Equal([]byte(sig), []byte(s.sign(ts+":"+user)))
}

func (s *Server) userIdentity(user string) *identity {
	if _, ok := s.st.users[user]; !ok {
		return nil
	}
	return &identity{user: user}
}

// authenticate implements pveproxy's choice of credentials (pve-http-server AnyEvent.pm
// unshift_read_header: the PVEAuthCookie cookie, else a PVEAuthCookie value in the Authorization
// header, else a PVEAPIToken there) and pve-manager PVE/HTTPServer.pm auth_handler: token, else
// "No ticket" / ticket check, and a CSRF token on every non-GET ticket request.
func (s *Server) authenticate(r *http.Request) (*identity, *apiError) {
	s.mu.Lock()
	defer s.mu.Unlock()
	ticket := extractAuthValue(strings.Join(r.Header.Values("Cookie"), "; "), "PVEAuthCookie")
	if ticket == "" {
		ticket = extractAuthValue(r.Header.Get("Authorization"), "PVEAuthCookie")
	}
	if ticket == "" {
		if apiToken := extractAuthValue(r.Header.Get("Authorization"), "PVEAPIToken"); apiToken != "" {
			return s.tokenIdentity(apiToken)
		}
		return nil, errAuth("No ticket")
	}
	user, ok := s.verifyTicket(ticket)
	if !ok {
		return nil, errAuth("Authentication failed!")
	}
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		if !s.verifyCSRF(r.Header.Get("CSRFPreventionToken"), user) {
			return nil, errAuth("Permission denied - invalid csrf token")
		}
	}
	id := s.userIdentity(user)
	if id == nil {
		return nil, errAuth("Authentication failed!")
	}
	return id, nil
}

// extractAuthValue is PVE::APIServer::Formatter::extract_auth_value: the value after "key=" or
// "key " up to the next ';', URI-unescaped.
func extractAuthValue(header, key string) string {
	if header == "" {
		return ""
	}
	re := reTokenAuth
	if key != "PVEAPIToken" {
		re = regexp.MustCompile(`(?:^|\s)` + regexp.QuoteMeta(key) + `(?:=| )([^;]*)`)
	}
	m := re.FindStringSubmatch(header)
	if m == nil {
		return ""
	}
	v, err := url.PathUnescape(m[1])
	if err != nil {
		return m[1]
	}
	return v
}

// tokenIdentity is PVE::AccessControl::verify_token for "USER@REALM!TOKENID=SECRET".
func (s *Server) tokenIdentity(val string) (*identity, *apiError) {
	full, secret, ok := strings.Cut(strings.TrimSpace(val), "=")
	if !ok {
		return nil, errAuth("Authentication failed!")
	}
	tok, ok := s.st.tokens[full]
	if !ok || subtle.ConstantTimeCompare([]byte(tok.Secret), []byte(secret)) != 1 {
		return nil, errAuth("Authentication failed!")
	}
	user, tokenID, _ := strings.Cut(full, "!")
	id := s.userIdentity(user)
	if id == nil {
		return nil, errAuth("Authentication failed!")
	}
	id.tokenID = tokenID
	return id, nil
}

// handleTicket: POST /access/ticket — password or a valid ticket (renewal) for the same user.
func handleTicket(s *Server, c *call) (any, error) {
	user := c.p.get("username")
	// pve-access-control src/PVE/API2/AccessControl.pm create_ticket: the realm is appended whenever
	// it is given ("root@pam" + realm "pam" is the unknown user "root@pam@pam")
	if realm := c.p.get("realm"); realm != "" {
		user += "@" + realm
	}
	pw := c.p.get("password")
	s.mu.Lock()
	u, ok := s.st.users[user]
	s.mu.Unlock()
	good := ok && u.Password != "" && subtle.ConstantTimeCompare([]byte(u.Password), []byte(pw)) == 1
	if !good && ok {
		// AccessControl.pm create_ticket_do: a valid ticket of the user, or any ticket of root@pam
		// ("root@pam can create tickets for other users"), stands for the password
		if tu, tok := s.verifyTicket(pw); tok && (tu == user || tu == "root@pam") {
			good = true
		}
	}
	if !good {
		// a handler's PVE::Exception: pve-manager HTTPServer.pm rest_handler turns it into status +
		// message and the formatter writes the body (unlike auth_handler's bodiless 401s)
		return nil, &apiError{Code: 401, Msg: "authentication failure\n"}
	}
	caps := map[string]map[string]int{
		"vms":     {"VM.Allocate": 1, "VM.Audit": 1, "VM.Config.HWType": 1, "VM.PowerMgmt": 1, "VM.Monitor": 1, "VM.Config.Disk": 1},
		"storage": {"Datastore.Allocate": 1, "Datastore.AllocateSpace": 1, "Datastore.Audit": 1},
		"nodes":   {"Sys.Audit": 1, "Sys.Modify": 1, "Sys.PowerMgmt": 1},
		"mapping": {"Mapping.Audit": 1, "Mapping.Modify": 1, "Mapping.Use": 1},
		"access":  {"User.Modify": 1, "Permissions.Modify": 1},
		"dc":      {"Sys.Audit": 1, "SDN.Audit": 1},
		"sdn":     {"SDN.Audit": 1, "SDN.Use": 1},
	}
	return map[string]any{
		"username":            user,
		"ticket":              s.newTicket(user),
		"CSRFPreventionToken": s.newCSRF(user),
		"cap":                 caps,
	}, nil
}
