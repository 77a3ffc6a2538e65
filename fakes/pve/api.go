package pve

import (
	"errors"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// Request classes in /_sim/stats.
const (
	ClassRead     = "read"     // GET, and POST agent/ping (it changes nothing)
	ClassMutating = "mutating" // POST/PUT/DELETE, agent/exec included (it runs a command in the guest)
	ClassAuth     = "auth"     // POST/GET /access/ticket (login, ticket renewal)
)

// handlerFunc answers one API call; the result goes into {"data": ...}.
type handlerFunc func(s *Server, c *call) (any, error)

// withTotal adds "total" next to "data" (task log).
type withTotal struct {
	data  any
	total int
}

// route is one API method of the route table; PARITY.md is generated from the table.
type route struct {
	method  string
	pattern string // "/nodes/{node}/qemu/{vmid}/config"; a last "{name...}" takes the rest
	segs    []string
	priv    string // privilege checked on privOn ("" = any authenticated user; "A|B" = any of them, the schema's "any")
	privOn  string // "/vms/{vmid}"
	class   string
	public  bool // no authentication (access/ticket)
	handler handlerFunc
	// docs for PARITY.md
	client      string // go-proxmox call
	modelled    string
	notModelled string
}

// call is one API request being answered.
type call struct {
	r      *http.Request
	method string
	rel    string // path without /api2/json
	vars   map[string]string
	p      params
	id     *identity
	route  *route
}

func (c *call) vmid() int { n, _ := strconv.Atoi(c.vars["vmid"]); return n }

func (rt *route) match(segs []string) (map[string]string, bool) {
	vars := map[string]string{}
	for i, ps := range rt.segs {
		if strings.HasPrefix(ps, "{") && strings.HasSuffix(ps, "...}") {
			if i >= len(segs) {
				return nil, false
			}
			vars[strings.TrimSuffix(ps[1:], "...}")] = strings.Join(segs[i:], "/")
			return vars, true
		}
		if i >= len(segs) {
			return nil, false
		}
		if strings.HasPrefix(ps, "{") {
			if segs[i] == "" {
				return nil, false
			}
			vars[ps[1:len(ps)-1]] = segs[i]
			continue
		}
		if ps != segs[i] {
			return nil, false
		}
	}
	return vars, len(segs) == len(rt.segs)
}

func splitPath(p string) []string {
	p = strings.Trim(p, "/")
	if p == "" {
		return nil
	}
	return strings.Split(p, "/")
}

func (s *Server) findRoute(method, rel string) (*route, map[string]string) {
	segs := splitPath(rel)
	for _, rt := range s.routes {
		if rt.method != method {
			continue
		}
		if vars, ok := rt.match(segs); ok {
			return rt, vars
		}
	}
	return nil, nil
}

// classify tells read from mutating requests for /_sim/stats.
func classify(method, rel string) string {
	switch {
	case rel == "/access/ticket":
		return ClassAuth
	case method == http.MethodGet || method == http.MethodHead:
		return ClassRead
	case method == http.MethodPost && strings.HasSuffix(rel, "/agent/ping"):
		return ClassRead
	}
	return ClassMutating
}

func (s *Server) serveAPI(w http.ResponseWriter, r *http.Request) {
	start := time.Now()
	rel := strings.TrimPrefix(r.URL.Path, "/api2/json")
	if rel == "" {
		rel = "/"
	}
	rec := &requestRecord{Time: start, Method: r.Method, Path: rel, Query: redactQuery(r.URL.Query()), Class: classify(r.Method, rel)}

	if d := s.latency(); d > 0 {
		time.Sleep(d)
	}
	if e := s.takeFault(r.Method, rel); e != nil {
		rec.Status, rec.Reason, rec.Fault = e.Code, e.reason(), true
		if e.reset {
			rec.Reason = "connection reset"
		}
		s.recordRequest(rec)
		s.writeError(w, e)
		return
	}
	data, extra, err := s.dispatch(r, rel, rec)
	if err != nil {
		var ae *apiError
		if !errors.As(err, &ae) {
			ae = errDie("%v", err)
		}
		rec.Status, rec.Reason = ae.Code, ae.reason()
		if ae.Code == 401 {
			// pveproxy delays every failed authentication
			if d := s.opts.authDelay; d > 0 {
				time.Sleep(d)
			}
		}
		s.log().Debug("pve api error", "method", r.Method, "path", rel, "status", ae.Code, "reason", ae.reason())
		s.recordRequest(rec)
		s.writeError(w, ae)
		return
	}
	rec.Status, rec.Reason = 200, "OK"
	s.log().Debug("pve api", "method", r.Method, "path", rel, "user", rec.User, "status", 200)
	s.recordRequest(rec)
	s.writeData(w, data, extra)
}
