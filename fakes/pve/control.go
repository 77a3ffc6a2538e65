package pve

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"path"
	"strings"
	"time"
)

// FaultRule makes the next Count API calls matching Method and Path fail.
type FaultRule struct {
	// Method is GET, POST, PUT or DELETE ("" = any).
	Method string `json:"method"`
	// Path is a path.Match pattern relative to /api2/json ("*" stays within one segment),
	// e.g. "/nodes/*/qemu/*/status/start".
	Path string `json:"path"`
	// Count is how many matching calls fail (0 = 1).
	Count int `json:"count"`
	// Status and Reason form the answer, e.g. 500 "got timeout" or 596 "Connection timed out".
	Status int    `json:"status"`
	Reason string `json:"reason"`
	// Reset closes the connection with a TCP reset instead of answering.
	Reset bool `json:"reset"`
}

// TaskFault makes the next Count tasks of Type fail with ExitStatus.
type TaskFault struct {
	Type       string `json:"type"`       // qmstart, qmcreate, qmstop, resize ...
	ExitStatus string `json:"exitstatus"` // e.g. "start failed: QEMU exited with code 1"
	Count      int    `json:"count"`      // 0 = 1
}

type faultState struct {
	rules      []*FaultRule
	taskFaults []*TaskFault
	latency    time.Duration
}

// FailNext installs a fault rule.
func (s *Server) FailNext(r FaultRule) {
	if r.Count <= 0 {
		r.Count = 1
	}
	if r.Status == 0 {
		r.Status = 500
	}
	if r.Reason == "" {
		r.Reason = http.StatusText(r.Status)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.faults.rules = append(s.faults.rules, &r)
}

// FailTask makes tasks of a type fail.
func (s *Server) FailTask(f TaskFault) {
	if f.Count <= 0 {
		f.Count = 1
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.faults.taskFaults = append(s.faults.taskFaults, &f)
}

// SetLatency adds d to every API response.
func (s *Server) SetLatency(d time.Duration) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.faults.latency = d
}

// ClearFaults removes every fault rule, task fault and latency.
func (s *Server) ClearFaults() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.faults = faultState{}
}

func (s *Server) latency() time.Duration {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.faults.latency
}

func (s *Server) takeFault(method, rel string) *apiError {
	s.mu.Lock()
	defer s.mu.Unlock()
	for i, r := range s.faults.rules {
		if r.Method != "" && !strings.EqualFold(r.Method, method) {
			continue
		}
		if ok, _ := path.Match(r.Path, rel); !ok {
			continue
		}
		r.Count--
		if r.Count <= 0 {
			s.faults.rules = append(s.faults.rules[:i], s.faults.rules[i+1:]...)
		}
		e := &apiError{Code: r.Status, Msg: r.Reason + "\n", reset: r.Reset}
		if r.Status == 401 {
			e.noBody = true
		}
		return e
	}
	return nil
}

// takeTaskFault is called with s.mu held.
func (s *Server) takeTaskFault(typ string) (string, bool) {
	for i, f := range s.faults.taskFaults {
		if f.Type != typ {
			continue
		}
		f.Count--
		if f.Count <= 0 {
			s.faults.taskFaults = append(s.faults.taskFaults[:i], s.faults.taskFaults[i+1:]...)
		}
		return f.ExitStatus, true
	}
	return "", false
}

// MarkPCIBusy reserves a PCI function (full id, e.g. 0000:01:00.0) for another, running VMID,
// so a start that needs it fails with "PCI device '…' already in use by VMID '<vmid>'".
func (s *Server) MarkPCIBusy(node, id string, vmid int) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.st.node(node) == nil {
		return errf("no such node %q", node)
	}
	s.st.reservations[node+" "+id] = &reservation{vmid: vmid, sim: true}
	return nil
}

// ReleasePCI drops a reservation made with MarkPCIBusy.
func (s *Server) ReleasePCI(node, id string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if r := s.st.reservations[node+" "+id]; r != nil && r.sim {
		delete(s.st.reservations, node+" "+id)
	}
}

// SetIOMMU switches a node's IOMMU on or off (off: iommugroup -1, pass-through fails at start).
func (s *Server) SetIOMMU(node string, on bool) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := s.st.node(node)
	if n == nil {
		return errf("no such node %q", node)
	}
	n.iommu = on
	return nil
}

// Reset returns to the initial topology: VMs (guests destroyed), tasks, faults, tickets stay valid, stats cleared.
func (s *Server) Reset() {
	s.mu.Lock()
	var guests []Guest
	for _, v := range s.st.vms {
		if v.guest != nil {
			guests = append(guests, v.guest)
		}
	}
	for _, t := range s.tasks {
		if !t.done {
			select {
			case <-t.cancel:
			default:
				close(t.cancel)
			}
		}
	}
	s.st = newState(s.opts.topology)
	s.tasks = map[string]*task{}
	s.faults = faultState{latency: s.opts.latency}
	s.stats.reset()
	s.mu.Unlock()
	for _, g := range guests {
		_ = g.Destroy()
	}
	s.startInitialVMs()
}

// serveControl answers /_sim/....
func (s *Server) serveControl(w http.ResponseWriter, r *http.Request) {
	rel := strings.TrimPrefix(r.URL.Path, "/_sim")
	for prefix, h := range s.opts.control {
		if rel == "/"+prefix || strings.HasPrefix(rel, "/"+prefix+"/") {
			h.ServeHTTP(w, r)
			return
		}
	}
	var body struct {
		Node    string `json:"node"`
		ID      string `json:"id"`
		VMID    int    `json:"vmid"`
		Enabled *bool  `json:"enabled"`
		Latency string `json:"latency"`
	}
	var fr FaultRule
	var tf TaskFault
	if r.Method == http.MethodPost {
		raw, _ := io.ReadAll(io.LimitReader(r.Body, 1<<20))
		if len(bytes.TrimSpace(raw)) > 0 {
			for _, dst := range []any{&body, &fr, &tf} {
				if err := json.Unmarshal(raw, dst); err != nil {
					http.Error(w, "bad JSON: "+err.Error(), http.StatusBadRequest)
					return
				}
			}
		}
	}
	reply := func(v any) {
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(v)
	}
	switch r.Method + " " + rel {
	case "GET /stats":
		reply(s.Stats())
	case "GET /requests":
		reply(s.Requests())
	case "GET /state":
		reply(s.Snapshot())
	case "POST /reset":
		s.Reset()
		reply(map[string]bool{"ok": true})
	case "POST /faults":
		if fr.Path == "" {
			http.Error(w, `"path" is required (path.Match pattern relative to /api2/json)`, http.StatusBadRequest)
			return
		}
		s.FailNext(fr)
		reply(map[string]bool{"ok": true})
	case "DELETE /faults":
		s.ClearFaults()
		reply(map[string]bool{"ok": true})
	case "POST /latency":
		d, err := time.ParseDuration(body.Latency)
		if err != nil {
			http.Error(w, `"latency" must be a Go duration such as "150ms"`, http.StatusBadRequest)
			return
		}
		s.SetLatency(d)
		reply(map[string]bool{"ok": true})
	case "POST /task-faults":
		if tf.Type == "" || tf.ExitStatus == "" {
			http.Error(w, `"type" and "exitstatus" are required`, http.StatusBadRequest)
			return
		}
		s.FailTask(tf)
		reply(map[string]bool{"ok": true})
	case "POST /pci/busy":
		if err := s.MarkPCIBusy(body.Node, body.ID, body.VMID); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		reply(map[string]bool{"ok": true})
	case "POST /pci/release":
		s.ReleasePCI(body.Node, body.ID)
		reply(map[string]bool{"ok": true})
	case "POST /iommu":
		if body.Enabled == nil {
			http.Error(w, `"enabled" is required`, http.StatusBadRequest)
			return
		}
		if err := s.SetIOMMU(body.Node, *body.Enabled); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		reply(map[string]bool{"ok": true})
	default:
		http.Error(w, "unknown control call "+r.Method+" /_sim"+rel+
			" (GET stats|requests|state, POST reset|faults|latency|task-faults|pci/busy|pci/release|iommu, DELETE faults)", http.StatusNotFound)
	}
}

// Stats counts API requests (/api2/json only; /_sim is not counted).
type Stats struct {
	Total    int            `json:"total"`
	Read     int            `json:"read"`
	Mutating int            `json:"mutating"`
	Auth     int            `json:"auth"`
	Faults   int            `json:"faults"`
	ByMethod map[string]int `json:"by_method"`
	// ByPath keys are "METHOD /path" with the concrete path, e.g. "GET /nodes/pve/qemu/140/config".
	ByPath map[string]int `json:"by_path"`
	// ByRoute keys are "METHOD pattern", e.g. "GET /nodes/{node}/qemu/{vmid}/config" ("" pattern: no route).
	ByRoute  map[string]int `json:"by_route"`
	ByStatus map[int]int    `json:"by_status"`
	// Sources are the WithStatsSource entries.
	Sources map[string]any `json:"sources,omitempty"`
}

// RequestRecord is one API request in the log (secrets redacted).
type RequestRecord struct {
	Time   time.Time      `json:"time"`
	Method string         `json:"method"`
	Path   string         `json:"path"`
	Route  string         `json:"route,omitempty"`
	Query  string         `json:"query,omitempty"`
	Params map[string]any `json:"params,omitempty"`
	Class  string         `json:"class"`
	User   string         `json:"user,omitempty"`
	Status int            `json:"status"`
	Reason string         `json:"reason"`
	Fault  bool           `json:"fault,omitempty"`
}

type requestRecord = RequestRecord

type statsState struct {
	log []RequestRecord
}

func (st *statsState) reset() { st.log = nil }

func (s *Server) recordRequest(r *RequestRecord) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.stats.log = append(s.stats.log, *r)
}

// Stats returns the request counters.
func (s *Server) Stats() Stats {
	s.mu.Lock()
	st := Stats{ByMethod: map[string]int{}, ByPath: map[string]int{}, ByRoute: map[string]int{}, ByStatus: map[int]int{}}
	for _, r := range s.stats.log {
		st.Total++
		switch r.Class {
		case ClassRead:
			st.Read++
		case ClassAuth:
			st.Auth++
		default:
			st.Mutating++
		}
		if r.Fault {
			st.Faults++
		}
		st.ByMethod[r.Method]++
		st.ByPath[r.Method+" "+r.Path]++
		st.ByRoute[r.Route]++
		st.ByStatus[r.Status]++
	}
	srcs := s.opts.statsSources
	s.mu.Unlock()
	if len(srcs) > 0 {
		st.Sources = map[string]any{}
		for _, src := range srcs {
			st.Sources[src.name] = src.fn()
		}
	}
	return st
}

// Requests returns the request log (secrets redacted).
func (s *Server) Requests() []RequestRecord {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]RequestRecord(nil), s.stats.log...)
}

var secretParams = map[string]bool{"password": true, "cipassword": true, "new-password": true, "ticket": true, "otp": true, "secret": true}

const redacted = "**********"

func redactQuery(q url.Values) string {
	if len(q) == 0 {
		return ""
	}
	c := url.Values{}
	for k, v := range q {
		if secretParams[k] {
			c[k] = []string{redacted}
			continue
		}
		c[k] = v
	}
	return c.Encode()
}

func redactParams(raw map[string]any) map[string]any {
	if len(raw) == 0 {
		return nil
	}
	out := map[string]any{}
	for k, v := range raw {
		if secretParams[k] {
			out[k] = redacted
			continue
		}
		out[k] = v
	}
	return out
}
