package pve

import (
	"bytes"
	"encoding/json"
	"fmt"
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
	pciFaults  map[string]string // "<node> <0000:01:00.0>" -> PCIFault*
	vmFaults   map[int]string    // vmid -> VMFault* (one start)
	pciAfter   []*pciTrigger
}

// Device and QEMU faults (SetPCIFault, SetVMFault).
const (
	// PCIFaultVFIOBind: the function cannot be bound to vfio-pci; every start that passes it through
	// fails with "can't unbind/bind PCI group to VFIO '<id>'" until the fault is cleared.
	PCIFaultVFIOBind = "vfio-bind"
	// VMFaultKVMTimeout: the VM's next start fails with
	// "start failed: command '/usr/bin/kvm -id <vmid> …' failed: got timeout".
	VMFaultKVMTimeout = "kvm-timeout"
)

// pciTrigger is an armed MarkPCIBusyAfter.
type pciTrigger struct {
	node, id, taskType string
	vmid               int
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

// MarkPCIBusyAfter arms a race: another VM (vmid) that passes the device through starts when the
// next task of taskType (e.g. "qmcreate") finishes, and from then holds the function id (full id,
// e.g. 0000:01:00.0) like any running VM. If vmid does not exist it is created now, stopped and not
// on boot, with hostpci0 naming id's slot, so a preflight sees a VM that merely lists the device.
// Unlike MarkPCIBusy the holder is a real VM of the fake: stopping or destroying it frees the device,
// and KillQEMU leaves its reservation behind as PVE's "leftover" one.
func (s *Server) MarkPCIBusyAfter(node, id string, vmid int, taskType string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.st.node(node) == nil {
		return errf("no such node %q", node)
	}
	if taskType == "" {
		return errf("a task type is required (e.g. qmcreate)")
	}
	if vmid < 100 {
		return errf("vmid %d: VM ids start at 100", vmid)
	}
	devs := s.pciByPrefix(node, id)
	if len(devs) != 1 || devs[0].ID != id {
		return errf("node %q has no PCI function %q (use a full id such as 0000:01:00.0)", node, id)
	}
	slot := strings.TrimSuffix(id, id[strings.LastIndex(id, "."):])
	if v := s.st.vms[vmid]; v != nil {
		holds := false
		for _, k := range hostpciKeysSorted(v.conf) {
			kv, _ := parsePropString(v.conf[k], "host")
			for _, h := range strings.Split(kv["host"], ";") {
				if h == id || h == slot || "0000:"+h == slot || "0000:"+h == id {
					holds = true
				}
			}
		}
		if v.node != node || !holds {
			return errf("VM %d exists and does not pass through %s on node %q", vmid, id, node)
		}
	} else {
		s.st.vms[vmid] = &vmState{node: node, vmid: vmid, conf: map[string]string{
			"name": fmt.Sprintf("vm-gpu-%d", vmid), "memory": "8192", "cores": "4", "sockets": "1", "cpu": "host",
			"machine": "q35", "bios": "ovmf", "ostype": "l26", "scsihw": "virtio-scsi-single",
			"hostpci0": "host=" + slot + ",pcie=1", "net0": withMAC("virtio,bridge=vmbr0"),
			"smbios1": "uuid=" + randomUUID(), "vmgenid": randomUUID(),
		}}
	}
	s.faults.pciAfter = append(s.faults.pciAfter, &pciTrigger{node: node, id: id, vmid: vmid, taskType: taskType})
	return nil
}

// firePCITriggers starts the holders armed for a finished task of typ; called with s.mu held.
func (s *Server) firePCITriggers(typ string) {
	keep := s.faults.pciAfter[:0]
	for _, tr := range s.faults.pciAfter {
		if tr.taskType != typ {
			keep = append(keep, tr)
			continue
		}
		h := s.st.vms[tr.vmid]
		if h == nil || h.node != tr.node {
			continue // destroyed meanwhile: nothing starts
		}
		if !h.running {
			s.pidNext += 13
			h.running, h.pid, h.started = true, s.pidNext, time.Now()
		}
		pcis, _ := s.resolveHostpci(h, false, nil)
		for _, r := range pcis {
			for _, d := range r.devs {
				s.st.reservations[h.node+" "+d.ID] = &reservation{vmid: h.vmid, pid: h.pid}
			}
		}
		s.log().Debug("pve sim: VM started and holds its PCI devices", "vmid", h.vmid, "after", typ)
	}
	s.faults.pciAfter = keep
}

// KillQEMU ends a running VM's QEMU without PVE's cleanup (OOM kill while qmeventd is down): the VM
// shows stopped and its PCI reservations stay behind, so the next VM that needs the device gets
// "leftover PCI reservation found for …, lets take it..." in its start log.
func (s *Server) KillQEMU(vmid int) error {
	s.mu.Lock()
	v := s.st.vms[vmid]
	if v == nil || !v.running {
		s.mu.Unlock()
		return errf("VM %d is not running", vmid)
	}
	v.running, v.pid = false, 0
	g := v.guest
	s.mu.Unlock()
	if g != nil {
		_ = g.PowerOff(false)
	}
	return nil
}

// SetLock sets a VM's lock ("backup", "migrate", "snapshot" ...; "" clears it), as a running vzdump
// or migration does: config changes answer 500 "VM is locked (backup)", power tasks fail with it.
func (s *Server) SetLock(vmid int, lock string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	v := s.st.vms[vmid]
	if v == nil {
		return errf("no VM %d", vmid)
	}
	if lock == "" {
		delete(v.conf, "lock")
		return nil
	}
	if !reMappingID.MatchString(lock) {
		return errf("invalid lock %q", lock)
	}
	v.conf["lock"] = lock
	return nil
}

// SetPCIFault gives a PCI function a lasting fault (PCIFaultVFIOBind; "" clears it).
func (s *Server) SetPCIFault(node, id, kind string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.st.node(node) == nil {
		return errf("no such node %q", node)
	}
	switch kind {
	case "":
		delete(s.faults.pciFaults, node+" "+id)
		return nil
	case PCIFaultVFIOBind:
	default:
		return errf("unknown PCI fault %q (known: %s)", kind, PCIFaultVFIOBind)
	}
	if s.faults.pciFaults == nil {
		s.faults.pciFaults = map[string]string{}
	}
	s.faults.pciFaults[node+" "+id] = kind
	return nil
}

// SetVMFault makes the VM's next start fail (VMFaultKVMTimeout; "" clears it).
func (s *Server) SetVMFault(vmid int, kind string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	switch kind {
	case "":
		delete(s.faults.vmFaults, vmid)
		return nil
	case VMFaultKVMTimeout:
	default:
		return errf("unknown VM fault %q (known: %s)", kind, VMFaultKVMTimeout)
	}
	if s.faults.vmFaults == nil {
		s.faults.vmFaults = map[int]string{}
	}
	s.faults.vmFaults[vmid] = kind
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
func (s *Server) Reset() { s.reset(s.opts.topology) }

// ResetTo is Reset onto another topology (e.g. a multi-node cluster for one scenario) for this
// reset only: the next Reset returns to the initial topology. Users and tokens the topology
// does not list are the initial topology's, so the credentials a tool holds keep working.
func (s *Server) ResetTo(t Topology) error {
	if len(t.Nodes) == 0 {
		return errf("topology without nodes")
	}
	t = t.clone()
	if len(t.Users) == 0 {
		t.Users = append([]UserSpec(nil), s.opts.topology.Users...)
	}
	if len(t.Tokens) == 0 {
		t.Tokens = append([]TokenSpec(nil), s.opts.topology.Tokens...)
	}
	s.reset(t)
	return nil
}

func (s *Server) reset(t Topology) {
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
	s.st = newState(t)
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
		Node    string  `json:"node"`
		ID      string  `json:"id"`
		VMID    int     `json:"vmid"`
		Enabled *bool   `json:"enabled"`
		Latency string  `json:"latency"`
		After   string  `json:"after"`
		Lock    *string `json:"lock"`
		Kind    string  `json:"kind"`
	}
	var fr FaultRule
	var tf TaskFault
	var rawBody []byte
	var topo *Topology // POST /reset {"topology": {...}}
	if r.Method == http.MethodPost {
		raw, _ := io.ReadAll(io.LimitReader(r.Body, 4<<20))
		rawBody = raw
		if len(bytes.TrimSpace(raw)) > 0 {
			var rt struct{ Topology *Topology }
			if err := json.Unmarshal(raw, &rt); err != nil {
				http.Error(w, "bad JSON: "+err.Error(), http.StatusBadRequest)
				return
			}
			topo = rt.Topology
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
		if topo != nil {
			if err := s.ResetTo(*topo); err != nil {
				http.Error(w, err.Error(), http.StatusBadRequest)
				return
			}
		} else {
			s.Reset()
		}
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
	case "POST /pci/busy-after":
		if err := s.MarkPCIBusyAfter(body.Node, body.ID, body.VMID, body.After); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		reply(map[string]bool{"ok": true})
	case "POST /pci/fault":
		if err := s.SetPCIFault(body.Node, body.ID, body.Kind); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		reply(map[string]bool{"ok": true})
	case "POST /vm/fault":
		if err := s.SetVMFault(body.VMID, body.Kind); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		reply(map[string]bool{"ok": true})
	case "POST /vm/kill":
		if err := s.KillQEMU(body.VMID); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		reply(map[string]bool{"ok": true})
	case "POST /vm/lock":
		if body.Lock == nil {
			http.Error(w, `"lock" is required ("" clears it)`, http.StatusBadRequest)
			return
		}
		if err := s.SetLock(body.VMID, *body.Lock); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		reply(map[string]bool{"ok": true})
	case "POST /acl":
		var a ACLSpec
		if err := json.Unmarshal(rawBody, &a); err != nil || a.Path == "" || a.User == "" || a.Role == "" {
			http.Error(w, `"path", "user" and "role" are required`, http.StatusBadRequest)
			return
		}
		if err := s.GrantACL(a); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		reply(map[string]bool{"ok": true})
	case "POST /snippet":
		var sn struct{ VolID, Content string }
		if err := json.Unmarshal(rawBody, &sn); err != nil || sn.VolID == "" {
			http.Error(w, `"volid" and "content" are required`, http.StatusBadRequest)
			return
		}
		if err := s.PutSnippet(sn.VolID, sn.Content); err != nil {
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
			" (GET stats|requests|state, POST reset|faults|latency|task-faults|acl|snippet|pci/busy|pci/busy-after|pci/release|pci/fault|vm/fault|vm/kill|vm/lock|iommu, DELETE faults)", http.StatusNotFound)
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
