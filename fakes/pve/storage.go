package pve

import (
	"sort"
	"strings"
	"time"
)

func (s *Server) storageEntry(ss *storageState) map[string]any {
	used := ss.used()
	total := ss.spec.TotalBytes
	if used > total {
		total = used
	}
	frac := 0.0
	if total > 0 {
		frac = float64(used) / float64(total)
	}
	return map[string]any{
		"storage": ss.spec.Name, "type": ss.spec.Type, "content": strings.Join(ss.spec.Content, ","),
		"active": 1, "enabled": 1, "shared": b2i(ss.spec.Shared),
		"total": total, "used": used, "avail": total - used, "used_fraction": frac,
	}
}

func handleStorageList(s *Server, c *call) (any, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	node := c.vars["node"]
	out := []map[string]any{}
	for _, ss := range s.st.storages {
		if !ss.availableOn(node) {
			continue
		}
		// pve-storage API2/Storage/Status.pm index: only storages with Datastore.Audit or
		// Datastore.AllocateSpace on /storage/<storage>
		perms := s.permissions(c.id.authUser(), "/storage/"+ss.spec.Name)
		_, audit := perms["Datastore.Audit"]
		_, space := perms["Datastore.AllocateSpace"]
		if !audit && !space {
			continue
		}
		if ct := c.p.get("content"); ct != "" {
			ok := false
			for _, want := range strings.Split(ct, ",") {
				ok = ok || ss.hasContent(want)
			}
			if !ok {
				continue
			}
		}
		if st := c.p.get("storage"); st != "" && st != ss.spec.Name {
			continue
		}
		out = append(out, s.storageEntry(ss))
	}
	return out, nil
}

// storageOn returns the storage or the PVE error for a missing one.
func (s *Server) storageOn(node, name string) (*storageState, error) {
	ss := s.st.storage(name)
	if ss == nil {
		return nil, errDie("storage '%s' does not exist", name)
	}
	if !ss.availableOn(node) {
		return nil, errDie("storage '%s' is not available on node '%s'", name, node)
	}
	return ss, nil
}

func handleStorageStatus(s *Server, c *call) (any, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	ss, err := s.storageOn(c.vars["node"], c.vars["storage"])
	if err != nil {
		return nil, err
	}
	e := s.storageEntry(ss)
	delete(e, "storage")
	return e, nil
}

var ctimeBase = time.Date(2025, 9, 12, 8, 30, 0, 0, time.UTC).Unix()

func volumeEntry(v *VolumeSpec, i int) map[string]any {
	e := map[string]any{"volid": v.VolID, "content": volumeContent(v.VolID), "format": v.Format, "size": v.Size, "ctime": ctimeBase + int64(i)*3600}
	if v.VMID != 0 {
		e["vmid"] = v.VMID
	}
	return e
}

func handleStorageContent(s *Server, c *call) (any, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	ss, err := s.storageOn(c.vars["node"], c.vars["storage"])
	if err != nil {
		return nil, err
	}
	vols := append([]*VolumeSpec(nil), ss.volumes...)
	sort.SliceStable(vols, func(i, j int) bool { return vols[i].VolID < vols[j].VolID })
	out := []map[string]any{}
	for i, v := range vols {
		if !listable(ss, v.VolID) {
			continue // a file pve-storage does not recognise (e.g. import/x.img) is not listed
		}
		if ct := c.p.get("content"); ct != "" && volumeContent(v.VolID) != ct {
			continue
		}
		if c.p.has("vmid") && c.p.get("vmid") != itoa(v.VMID) {
			continue
		}
		out = append(out, volumeEntry(v, i))
	}
	return out, nil
}

// handleVolumeGet: GET /nodes/{node}/storage/{storage}/content/{volume} — volume attributes.
func handleVolumeGet(s *Server, c *call) (any, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	ss, err := s.storageOn(c.vars["node"], c.vars["storage"])
	if err != nil {
		return nil, err
	}
	volid := c.vars["volume"]
	if !strings.Contains(volid, ":") {
		volid = ss.spec.Name + ":" + volid
	}
	v := ss.volume(volid)
	if v == nil {
		// pve-storage API2/Storage/Content.pm info
		return nil, errDie("file_size_info on '%s' failed", volid)
	}
	return map[string]any{"path": volumePath(ss, volid), "size": v.Size, "used": v.Size, "format": v.Format}, nil
}

// volumePath is where PVE keeps a volume (dir storages under /var/lib/vz, LVM under /dev/<vg>).
func volumePath(ss *storageState, volid string) string {
	_, name, _ := strings.Cut(volid, ":")
	if ss.spec.Type == "lvmthin" || ss.spec.Type == "lvm" {
		return "/dev/pve/" + name
	}
	base := "/var/lib/vz"
	if ss.spec.Name != "local" {
		base = "/mnt/pve/" + ss.spec.Name
	}
	dir, file, ok := strings.Cut(name, "/")
	if !ok {
		return base + "/" + name
	}
	switch dir {
	case "iso", "vztmpl":
		return base + "/template/" + dir + "/" + file
	case "import", "snippets":
		return base + "/" + dir + "/" + file
	case "backup":
		return base + "/dump/" + file
	}
	return base + "/images/" + name
}
