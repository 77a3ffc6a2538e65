package pve

import (
	"sort"
	"strings"
	"time"
)

// state is the in-memory cluster; every field is guarded by Server.mu.
type state struct {
	clusterName  string
	nodes        []*nodeState
	storages     []*storageState
	mappings     []*mappingState
	users        map[string]UserSpec
	tokens       map[string]TokenSpec
	vms          map[int]*vmState
	reservations map[string]*reservation // "<node> <0000:01:00.0>"
	incarnations int
	acls         []ACLSpec
	roles        map[string][]string
	sources      []DownloadSource
}

type nodeState struct {
	spec     NodeSpec
	iommu    bool
	bootTime time.Time
}

type storageState struct {
	spec    StorageSpec
	volumes []*VolumeSpec
}

type mappingState struct {
	id          string
	description string
	maps        []string
}

type vmState struct {
	node        string
	vmid        int
	conf        map[string]string
	running     bool
	pid         int
	started     time.Time
	guest       Guest
	incarnation string
}

// reservation is a PCI function held by a VM (PVE's /var/run/pve-reserved-ports and pci reservation file).
type reservation struct {
	vmid     int
	starting bool // reserved by a start task that has not finished
	pid      int  // QEMU pid of the holder once it runs (a reservation whose pid is gone is "leftover")
	sim      bool // injected through the control API
}

func newState(t Topology) *state {
	st := &state{
		clusterName:  t.ClusterName,
		users:        map[string]UserSpec{},
		tokens:       map[string]TokenSpec{},
		vms:          map[int]*vmState{},
		reservations: map[string]*reservation{},
	}
	boot := time.Now().Add(-26 * time.Hour)
	for _, n := range t.Nodes {
		// defaults for sparse topologies (e.g. a topology file naming only the node)
		if n.Cores <= 0 {
			n.Cores = 16
		}
		if n.Sockets <= 0 {
			n.Sockets = 1
		}
		if n.MemoryGiB <= 0 {
			n.MemoryGiB = 64
		}
		if n.CPUModel == "" {
			n.CPUModel = "QEMU Virtual CPU version 2.5+"
		}
		if n.IP == "" {
			n.IP = "127.0.0.1"
		}
		st.nodes = append(st.nodes, &nodeState{spec: n, iommu: n.IOMMU, bootTime: boot})
	}
	for _, sp := range t.Storages {
		ss := &storageState{spec: sp}
		for _, v := range sp.Volumes {
			v := v
			ss.volumes = append(ss.volumes, &v)
		}
		st.storages = append(st.storages, ss)
	}
	for _, m := range t.Mappings {
		st.mappings = append(st.mappings, &mappingState{id: m.ID, description: m.Description, maps: append([]string(nil), m.Map...)})
	}
	for _, u := range t.Users {
		st.users[u.ID] = u
	}
	for _, tk := range t.Tokens {
		st.tokens[tk.ID] = tk
	}
	st.acls = append([]ACLSpec(nil), t.ACLs...)
	st.roles = t.Roles
	st.sources = append([]DownloadSource(nil), t.DownloadSources...)
	for _, v := range t.VMs {
		conf := map[string]string{}
		for k, x := range v.Config {
			conf[k] = x
		}
		node := v.Node
		if node == "" && len(t.Nodes) > 0 {
			node = t.Nodes[0].Name
		}
		st.vms[v.VMID] = &vmState{node: node, vmid: v.VMID, conf: conf, running: v.Running}
		// the VM's disks exist on their storages
		for k, val := range conf {
			if !reDiskKey.MatchString(k) && !strings.HasPrefix(k, "unused") {
				continue
			}
			d := parseDrive(val)
			store, _, ok := strings.Cut(d.file, ":")
			ss := st.storage(store)
			if !ok || ss == nil || ss.volume(d.file) != nil || volumeContent(d.file) != "images" {
				continue
			}
			size, _ := parseSize(d.opts["size"])
			format := "raw"
			if strings.HasSuffix(d.file, ".qcow2") {
				format = "qcow2"
			}
			ss.volumes = append(ss.volumes, &VolumeSpec{VolID: d.file, Format: format, Size: size, VMID: v.VMID})
		}
	}
	return st
}

func (st *state) node(name string) *nodeState {
	for _, n := range st.nodes {
		if n.spec.Name == name {
			return n
		}
	}
	return nil
}

func (st *state) storage(name string) *storageState {
	for _, s := range st.storages {
		if s.spec.Name == name {
			return s
		}
	}
	return nil
}

func (st *state) mapping(id string) *mappingState {
	for _, m := range st.mappings {
		if m.id == id {
			return m
		}
	}
	return nil
}

func (ss *storageState) availableOn(node string) bool {
	return len(ss.spec.Nodes) == 0 || contains(ss.spec.Nodes, node)
}

func (ss *storageState) hasContent(c string) bool { return contains(ss.spec.Content, c) }

func (ss *storageState) volume(volid string) *VolumeSpec {
	for _, v := range ss.volumes {
		if v.VolID == volid {
			return v
		}
	}
	return nil
}

func (ss *storageState) used() uint64 {
	var u uint64
	for _, v := range ss.volumes {
		u += v.Size
	}
	return u
}

func (ss *storageState) removeVolume(volid string) {
	out := ss.volumes[:0]
	for _, v := range ss.volumes {
		if v.VolID != volid {
			out = append(out, v)
		}
	}
	ss.volumes = out
}

// volumeContent derives a volume's content type from its volid.
func volumeContent(volid string) string {
	_, name, _ := strings.Cut(volid, ":")
	if dir, _, ok := strings.Cut(name, "/"); ok {
		switch dir {
		case "iso", "vztmpl", "snippets", "import":
			return dir
		case "dump":
			return "backup"
		}
		return "images"
	}
	if strings.HasPrefix(name, "subvol-") {
		return "rootdir"
	}
	return "images"
}

// vmsSorted lists VMs by id.
func (st *state) vmsSorted() []*vmState {
	out := make([]*vmState, 0, len(st.vms))
	for _, v := range st.vms {
		out = append(out, v)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].vmid < out[j].vmid })
	return out
}

// SnippetContent returns the content of a snippet volume (e.g. "local:snippets/aimachine-vendor.yaml").
func (s *Server) SnippetContent(volid string) (string, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.snippetLocked(volid)
}

func (s *Server) snippetLocked(volid string) (string, bool) {
	store, _, _ := strings.Cut(volid, ":")
	ss := s.st.storage(store)
	if ss == nil {
		return "", false
	}
	v := ss.volume(volid)
	if v == nil || volumeContent(volid) != "snippets" {
		return "", false
	}
	return v.Data, true
}

// PutSnippet adds or replaces a snippet on a storage with "snippets" content (what an operator does with scp).
func (s *Server) PutSnippet(volid, content string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	store, _, _ := strings.Cut(volid, ":")
	ss := s.st.storage(store)
	if ss == nil {
		return errf("storage '%s' does not exist", store)
	}
	if !ss.hasContent("snippets") || volumeContent(volid) != "snippets" {
		return errf("storage '%s' does not support snippets (volid %s)", store, volid)
	}
	ss.removeVolume(volid)
	ss.volumes = append(ss.volumes, &VolumeSpec{VolID: volid, Format: "snippet", Size: uint64(len(content)), Data: content})
	return nil
}
