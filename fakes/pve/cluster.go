package pve

import (
	"crypto/sha1"
	"encoding/hex"
	"fmt"
	"sort"
	"strconv"
	"strings"
	"time"
)

const repoID = "2a5fa54a8503f96d"

func (s *Server) release() string {
	p := strings.SplitN(s.opts.version, ".", 3)
	if len(p) >= 2 {
		return p[0] + "." + p[1]
	}
	return s.opts.version
}

func handleVersion(s *Server, c *call) (any, error) {
	return map[string]any{"version": s.opts.version, "release": s.release(), "repoid": repoID}, nil
}

// nodeUsage is the simulated load of a node (host overhead + running VMs).
func (s *Server) nodeUsage(n *nodeState) (cpu float64, mem uint64) {
	mem = 4 << 30
	cpu = 0.0031
	for _, v := range s.st.vms {
		if v.node == n.spec.Name && v.running {
			mem += uint64(memoryMiB(v.conf)) << 20
			cpu += 0.002 * float64(confInt(v.conf, "cores", 1))
		}
	}
	if max := uint64(n.spec.MemoryGiB) << 30; mem > max {
		mem = max
	}
	return cpu, mem
}

const nodeRootfs = 100 << 30

func handleNodes(s *Server, c *call) (any, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := []map[string]any{}
	for _, n := range s.st.nodes {
		cpu, mem := s.nodeUsage(n)
		if n.spec.Offline { // pve-manager lists an unreachable member with status offline only
			out = append(out, map[string]any{"node": n.spec.Name, "status": "offline", "type": "node", "id": "node/" + n.spec.Name})
			continue
		}
		out = append(out, map[string]any{
			"node": n.spec.Name, "status": "online", "type": "node", "id": "node/" + n.spec.Name, "level": "",
			"ssl_fingerprint": s.Fingerprint(), "cpu": cpu, "maxcpu": n.spec.Cores,
			"mem": mem, "maxmem": uint64(n.spec.MemoryGiB) << 30, "disk": uint64(9 << 30), "maxdisk": uint64(nodeRootfs),
			"uptime": int64(time.Since(n.bootTime) / time.Second),
		})
	}
	return out, nil
}

func handleNodeStatus(s *Server, c *call) (any, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := s.st.node(c.vars["node"])
	cpu, mem := s.nodeUsage(n)
	total := uint64(n.spec.MemoryGiB) << 30
	sockets := n.spec.Sockets
	if sockets == 0 {
		sockets = 1
	}
	kernel := "6.8.12-9-pve"
	if s.versionAtLeast(9, 0) {
		kernel = "6.14.8-2-pve"
	}
	return map[string]any{
		"cpu": cpu, "wait": 0.000412, "idle": 0, "uptime": int64(time.Since(n.bootTime) / time.Second),
		"loadavg":  []string{"0.12", "0.09", "0.05"},
		"kversion": "Linux " + kernel + " #1 SMP PREEMPT_DYNAMIC PMX " + strings.TrimSuffix(kernel, "-pve") + " (2025-03-16T19:18Z)",
		"current-kernel": map[string]any{
			"sysname": "Linux", "release": kernel, "machine": "x86_64",
			"version": "#1 SMP PREEMPT_DYNAMIC PMX " + strings.TrimSuffix(kernel, "-pve") + " (2025-03-16T19:18Z)",
		},
		"boot-info":  map[string]any{"mode": "efi", "secureboot": 0},
		"pveversion": fmt.Sprintf("pve-manager/%s/%s", s.opts.version, repoID),
		"cpuinfo": map[string]any{
			"model": n.spec.CPUModel, "cpus": n.spec.Cores, "cores": n.spec.Cores / sockets, "sockets": sockets,
			"user_hz": 100, "mhz": "4191.732", "hvm": "1",
			"flags": "fpu vme de pse tsc msr pae mce cx8 apic sep mtrr pge mca cmov pat pse36 clflush mmx fxsr sse sse2 ht syscall nx mmxext fxsr_opt pdpe1gb rdtscp lm constant_tsc rep_good nopl nonstop_tsc cpuid extd_apicid aperfmperf rapl pni pclmulqdq monitor ssse3 fma cx16 sse4_1 sse4_2 x2apic movbe popcnt aes xsave avx f16c rdrand lahf_lm cmp_legacy svm extapic cr8_legacy abm sse4a misalignsse 3dnowprefetch osvw ibs skinit wdt tce topoext perfctr_core perfctr_nb bpext perfctr_llc mwaitx cpb cat_l3 cdp_l3 hw_pstate ssbd mba perfmon_v2 ibrs ibpb stibp ibrs_enhanced vmmcall fsgsbase bmi1 avx2 smep bmi2 erms invpcid cqm rdt_a avx512f avx512dq rdseed adx smap avx512ifma clflushopt clwb avx512cd sha_ni avx512bw avx512vl xsaveopt xsavec xgetbv1 xsaves npt nrip_save avic v_vmsave_vmload vgif",
		},
		"memory": map[string]any{"total": total, "used": mem, "free": total - mem, "available": total - mem},
		"swap":   map[string]any{"total": uint64(8 << 30), "used": 0, "free": uint64(8 << 30)},
		"rootfs": map[string]any{"total": uint64(nodeRootfs), "used": uint64(9 << 30), "free": uint64(nodeRootfs - 9<<30), "avail": uint64(nodeRootfs - 14<<30)},
		"ksm":    map[string]any{"shared": 0},
	}, nil
}

func handleClusterStatus(s *Server, c *call) (any, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := []map[string]any{}
	standalone := s.st.clusterName == ""
	if !standalone {
		// corosync votequorum: one vote per node, quorate with more than half of them online
		online := 0
		for _, n := range s.st.nodes {
			if !n.spec.Offline {
				online++
			}
		}
		out = append(out, map[string]any{"type": "cluster", "id": "cluster", "name": s.st.clusterName,
			"version": 1 + len(s.st.nodes), "quorate": b2i(2*online > len(s.st.nodes)), "nodes": len(s.st.nodes)})
	}
	for i, n := range s.st.nodes {
		e := map[string]any{"type": "node", "name": n.spec.Name, "id": "node/" + n.spec.Name, "ip": n.spec.IP,
			"level": "", "online": b2i(!n.spec.Offline), "local": 0, "nodeid": i + 1}
		if i == 0 {
			e["local"] = 1
		}
		if standalone {
			e["nodeid"] = 0
		}
		out = append(out, e)
	}
	return out, nil
}

func handleClusterResources(s *Server, c *call) (any, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	typ := c.p.get("type")
	out := []map[string]any{}
	if typ == "" || typ == "vm" {
		for _, v := range s.st.vmsSorted() {
			out = append(out, s.vmResource(v))
		}
	}
	if typ == "" || typ == "node" {
		for _, n := range s.st.nodes {
			cpu, mem := s.nodeUsage(n)
			if n.spec.Offline {
				out = append(out, map[string]any{"id": "node/" + n.spec.Name, "type": "node", "node": n.spec.Name, "status": "offline"})
				continue
			}
			out = append(out, map[string]any{
				"id": "node/" + n.spec.Name, "type": "node", "node": n.spec.Name, "status": "online", "level": "",
				"cgroup-mode": 2, "cpu": cpu, "maxcpu": n.spec.Cores, "mem": mem, "maxmem": uint64(n.spec.MemoryGiB) << 30,
				"disk": uint64(9 << 30), "maxdisk": uint64(nodeRootfs), "uptime": int64(time.Since(n.bootTime) / time.Second),
			})
		}
	}
	if typ == "" || typ == "storage" {
		for _, n := range s.st.nodes {
			for _, ss := range s.st.storages {
				if !ss.availableOn(n.spec.Name) {
					continue
				}
				out = append(out, map[string]any{
					"id": "storage/" + n.spec.Name + "/" + ss.spec.Name, "type": "storage", "storage": ss.spec.Name,
					"node": n.spec.Name, "status": "available", "plugintype": ss.spec.Type,
					"content": strings.Join(ss.spec.Content, ","), "shared": b2i(ss.spec.Shared),
					"disk": ss.used(), "maxdisk": ss.spec.TotalBytes,
				})
			}
		}
	}
	if typ == "" || typ == "sdn" {
		for _, n := range s.st.nodes {
			out = append(out, map[string]any{"id": "sdn/" + n.spec.Name + "/localnetwork", "type": "sdn",
				"sdn": "localnetwork", "node": n.spec.Name, "status": "ok"})
		}
	}
	return out, nil
}

func (s *Server) vmResource(v *vmState) map[string]any {
	m := map[string]any{
		"id": fmt.Sprintf("qemu/%d", v.vmid), "type": "qemu", "vmid": v.vmid, "node": v.node,
		"name": vmName(v), "status": "stopped", "template": b2i(v.conf["template"] == "1"),
		"maxcpu": vcpus(v.conf), "maxmem": uint64(memoryMiB(v.conf)) << 20, "maxdisk": bootDiskSize(v.conf),
		"cpu": 0, "mem": 0, "disk": 0, "netin": 0, "netout": 0, "diskread": 0, "diskwrite": 0, "uptime": 0,
	}
	if v.running {
		up := int64(time.Since(v.started) / time.Second)
		m["status"], m["uptime"] = "running", up
		m["cpu"], m["mem"] = 0.0127, (uint64(memoryMiB(v.conf))<<20)/3
		m["netin"], m["netout"], m["diskread"], m["diskwrite"] = 123456*up/10+4096, 23456*up/10+2048, 734003200, 104857600
	}
	if t := v.conf["tags"]; t != "" {
		m["tags"] = t
	}
	if l := v.conf["lock"]; l != "" {
		m["lock"] = l
	}
	return m
}

func b2i(b bool) int {
	if b {
		return 1
	}
	return 0
}

// handleNextID answers a JSON string, as PVE's Perl does (go-proxmox requires it).
func handleNextID(s *Server, c *call) (any, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if c.p.has("vmid") {
		id, _ := strconv.Atoi(c.p.get("vmid"))
		if _, taken := s.st.vms[id]; taken {
			return nil, errParam("vmid", fmt.Sprintf("VM %d already exists", id))
		}
		return c.p.get("vmid"), nil
	}
	for id := 100; ; id++ {
		if _, taken := s.st.vms[id]; !taken {
			return strconv.Itoa(id), nil
		}
	}
}

// --- cluster PCI mappings ---

// mappingsDigest is the digest of /etc/pve/mapping/pci.cfg (one for all entries, as PVE sends it).
func (s *Server) mappingsDigest() string {
	var b strings.Builder
	for _, m := range s.st.mappings {
		fmt.Fprintf(&b, "%s\n\tdescription %s\n", m.id, m.description)
		for _, e := range m.maps {
			fmt.Fprintf(&b, "\tmap %s\n", e)
		}
	}
	sum := sha1.Sum([]byte(b.String()))
	return hex.EncodeToString(sum[:])
}

func (m *mappingState) entry() map[string]any {
	e := map[string]any{"map": append([]string{}, m.maps...)}
	if m.description != "" {
		e["description"] = m.description
	}
	return e
}

func handleMappingList(s *Server, c *call) (any, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	ms := append([]*mappingState(nil), s.st.mappings...)
	sort.Slice(ms, func(i, j int) bool { return ms[i].id < ms[j].id })
	digest := s.mappingsDigest()
	out := []map[string]any{}
	for _, m := range ms {
		// pve-manager API2/Cluster/Mapping/PCI.pm index: only entries with Mapping.Modify,
		// Mapping.Use or Mapping.Audit on /mapping/pci/<id>
		perms := s.permissions(c.id.authUser(), "/mapping/pci/"+m.id)
		_, audit := perms["Mapping.Audit"]
		_, use := perms["Mapping.Use"]
		_, modify := perms["Mapping.Modify"]
		if !audit && !use && !modify {
			continue
		}
		e := m.entry()
		e["id"], e["digest"] = m.id, digest
		if node := c.p.get("check-node"); node != "" {
			e["checks"] = s.mappingChecks(m, node)
		}
		out = append(out, e)
	}
	return out, nil
}

// mappingChecks is the check-node validation (the GUI's warnings), as pve-manager words it.
func (s *Server) mappingChecks(m *mappingState, node string) []map[string]any {
	checks := []map[string]any{}
	found := false
	for _, entry := range m.maps {
		kv, _ := parsePropString(entry, "")
		if kv["node"] != node {
			continue
		}
		found = true
		devs := s.pciByPrefix(node, kv["path"])
		if len(devs) == 0 {
			checks = append(checks, map[string]any{"severity": "error",
				"message": fmt.Sprintf("Invalid configuration: pci device '%s' not found\n", kv["path"])})
			continue
		}
		if want := kv["id"]; want != "" && want != strings.TrimPrefix(devs[0].Vendor, "0x")+":"+strings.TrimPrefix(devs[0].Device, "0x") {
			checks = append(checks, map[string]any{"severity": "error",
				"message": fmt.Sprintf("Invalid configuration: PCI device '%s' has wrong id\n", kv["path"])})
		}
	}
	if !found {
		checks = append(checks, map[string]any{"severity": "warning", "message": "No mapping for node " + node + "."})
	}
	return checks
}

// handleMappingGet answers the config section (no id) plus the file digest.
func handleMappingGet(s *Server, c *call) (any, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	m := s.st.mapping(c.vars["id"])
	if m == nil {
		return nil, errDie("mapping '%s' not found", c.vars["id"])
	}
	e := m.entry()
	e["digest"] = s.mappingsDigest()
	return e, nil
}

func handleMappingCreate(s *Server, c *call) (any, error) {
	id := c.p.get("id")
	errs := map[string]string{}
	if !reMappingID.MatchString(id) {
		errs["id"] = "invalid format - invalid configuration ID '" + id + "'\n"
	}
	for _, e := range c.p.lists["map"] {
		kv, _ := parsePropString(e, "")
		for _, req := range []string{"node", "path", "id"} {
			if kv[req] == "" {
				errs["map"] = fmt.Sprintf("invalid format - format error\nmap.%s: property is missing and it is not optional\n", req)
			}
		}
	}
	if len(errs) > 0 {
		return nil, errParams(errs)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.st.mapping(id) != nil {
		return nil, errDie("pci ID '%s' already defined", id)
	}
	s.st.mappings = append(s.st.mappings, &mappingState{id: id, description: c.p.get("description"), maps: c.p.lists["map"]})
	return nil, nil
}

// handleMappingDelete removes a mapping; a missing one is not an error (pve-manager ignores it).
func handleMappingDelete(s *Server, c *call) (any, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	id := c.vars["id"]
	out := s.st.mappings[:0]
	for _, m := range s.st.mappings {
		if m.id != id {
			out = append(out, m)
		}
	}
	s.st.mappings = out
	return nil, nil
}
