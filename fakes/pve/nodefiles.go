package pve

import (
	"strings"
)

// SetStorageContent replaces a storage's content types (what `pvesm set STORAGE --content
// LIST` does on a node).
func (s *Server) SetStorageContent(storage string, content []string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	ss := s.st.storage(storage)
	if ss == nil {
		return errf("storage '%s' does not exist", storage)
	}
	known := map[string]bool{"images": true, "rootdir": true, "iso": true, "vztmpl": true, "backup": true, "snippets": true, "import": true}
	for _, c := range content {
		if !known[c] {
			return errf("content: invalid format - invalid content type '%s'", c)
		}
	}
	ss.spec.Content = append([]string(nil), content...)
	return nil
}

// VolumePath is `pvesm path VOLID` on the node: where the volume's file is.
func (s *Server) VolumePath(volid string) (string, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	store, _, ok := strings.Cut(volid, ":")
	ss := s.st.storage(store)
	if !ok || ss == nil {
		return "", errf("storage '%s' does not exist", store)
	}
	return volumePath(ss, volid), nil
}

// WriteNodeFile is a file written on the node as root. A file in a storage's snippets
// directory becomes that storage's snippet volume (PVE lists it from then on); other files
// are not modelled and are refused.
func (s *Server) WriteNodeFile(path string, data []byte) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, ss := range s.st.storages {
		dir := strings.TrimSuffix(volumePath(ss, ss.spec.Name+":snippets/x"), "x")
		name, ok := strings.CutPrefix(path, dir)
		if !ok || name == "" || strings.Contains(name, "/") {
			continue
		}
		volid := ss.spec.Name + ":snippets/" + name
		ss.removeVolume(volid)
		ss.volumes = append(ss.volumes, &VolumeSpec{VolID: volid, Format: "snippet", Size: uint64(len(data)), Data: string(data)})
		return nil
	}
	return errf("%s: the simulated node models only files in a storage's snippets directory", path)
}
