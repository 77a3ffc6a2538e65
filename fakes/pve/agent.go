package pve

import (
	"strconv"
	"strings"
)

// agentFor applies PVE's agent checks in order: config, agent configured, VM running, agent answering.
func (s *Server) agentFor(c *call) (Agent, *vmState, error) {
	s.mu.Lock()
	v, err := s.vmOn(c.vars["node"], c.vmid())
	if err != nil {
		s.mu.Unlock()
		return nil, nil, err
	}
	if !agentEnabled(v.conf) {
		s.mu.Unlock()
		return nil, nil, errDie("No QEMU guest agent configured")
	}
	if !v.running {
		s.mu.Unlock()
		return nil, nil, errDie("VM %d is not running", v.vmid)
	}
	g := v.guest
	s.mu.Unlock()
	if g == nil {
		return nil, nil, errDie("QEMU guest agent is not running")
	}
	a := g.Agent()
	if a == nil || !a.Ready() {
		return nil, nil, errDie("QEMU guest agent is not running")
	}
	return a, v, nil
}

func handleAgentPing(s *Server, c *call) (any, error) {
	if _, _, err := s.agentFor(c); err != nil {
		return nil, err
	}
	return map[string]any{"result": map[string]any{}}, nil
}

func handleAgentOSInfo(s *Server, c *call) (any, error) {
	a, _, err := s.agentFor(c)
	if err != nil {
		return nil, err
	}
	info := map[string]any{}
	for k, v := range a.OSInfo() {
		info[k] = v
	}
	return map[string]any{"result": info}, nil
}

func handleAgentHostName(s *Server, c *call) (any, error) {
	a, v, err := s.agentFor(c)
	if err != nil {
		return nil, err
	}
	name := ""
	if b, err := a.FileRead("/etc/hostname"); err == nil {
		name = strings.TrimSpace(string(b))
	}
	if name == "" {
		s.mu.Lock()
		name = vmName(v)
		s.mu.Unlock()
	}
	return map[string]any{"result": map[string]any{"host-name": name}}, nil
}

func handleAgentInterfaces(s *Server, c *call) (any, error) {
	a, _, err := s.agentFor(c)
	if err != nil {
		return nil, err
	}
	out := []map[string]any{}
	for _, ifc := range a.Interfaces() {
		e := map[string]any{"name": ifc.Name, "hardware-address": ifc.HardwareAddress,
			"statistics": map[string]any{"rx-bytes": 1835008, "rx-dropped": 0, "rx-errs": 0, "rx-packets": 5120,
				"tx-bytes": 524288, "tx-dropped": 0, "tx-errs": 0, "tx-packets": 2048}}
		if len(ifc.IPs) > 0 {
			var ips []map[string]any
			for _, ip := range ifc.IPs {
				ips = append(ips, map[string]any{"ip-address-type": ip.Type, "ip-address": ip.Addr, "prefix": ip.Prefix})
			}
			e["ip-addresses"] = ips
		}
		out = append(out, e)
	}
	return map[string]any{"result": out}, nil
}

func handleAgentExec(s *Server, c *call) (any, error) {
	a, _, err := s.agentFor(c)
	if err != nil {
		return nil, err
	}
	argv := c.p.lists["command"]
	if len(argv) == 0 || argv[0] == "" {
		return nil, errParam("command", "property is missing and it is not optional")
	}
	pid, err := a.Exec(argv, []byte(c.p.get("input-data")))
	if err != nil {
		return nil, errDie("Agent error: %v", err)
	}
	return map[string]any{"pid": pid}, nil
}

func handleAgentExecStatus(s *Server, c *call) (any, error) {
	a, _, err := s.agentFor(c)
	if err != nil {
		return nil, err
	}
	pid, _ := strconv.Atoi(c.p.get("pid"))
	st, err := a.ExecStatus(pid)
	if err != nil {
		return nil, errDie("Agent error: %v", err)
	}
	if !st.Exited {
		return map[string]any{"exited": 0}, nil
	}
	m := map[string]any{"exited": 1}
	if st.Signal != 0 {
		m["signal"] = st.Signal
	} else {
		m["exitcode"] = st.ExitCode
	}
	if len(st.Stdout) > 0 {
		m["out-data"] = string(st.Stdout)
	}
	if len(st.Stderr) > 0 {
		m["err-data"] = string(st.Stderr)
	}
	return m, nil
}

const fileReadLimit = 16 << 20

func handleAgentFileRead(s *Server, c *call) (any, error) {
	a, _, err := s.agentFor(c)
	if err != nil {
		return nil, err
	}
	b, err := a.FileRead(c.p.get("file"))
	if err != nil {
		return nil, errDie("Agent error: %v", err)
	}
	m := map[string]any{}
	if len(b) > fileReadLimit {
		b = b[:fileReadLimit]
		m["truncated"] = 1
	}
	m["content"] = string(b)
	return m, nil
}
