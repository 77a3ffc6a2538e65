package pve

import (
	"fmt"
	"regexp"
	"strings"
)

// pluginContent is each storage type's supported content types: the first element of
// plugindata()'s `content` in pve-storage src/PVE/Storage/<Type>Plugin.pm (DirPlugin.pm,
// BTRFSPlugin.pm, NFSPlugin.pm, CIFSPlugin.pm, CephFSPlugin.pm, LVMPlugin.pm,
// LvmThinPlugin.pm, ZFSPoolPlugin.pm, ZFSPlugin.pm, RBDPlugin.pm, ISCSIPlugin.pm,
// ISCSIDirectPlugin.pm, PBSPlugin.pm, ESXiPlugin.pm).
var pluginContent = map[string][]string{
	"dir":         {"images", "rootdir", "vztmpl", "iso", "backup", "snippets", "none", "import"},
	"btrfs":       {"images", "rootdir", "vztmpl", "iso", "backup", "snippets", "none", "import"},
	"nfs":         {"images", "rootdir", "vztmpl", "iso", "backup", "snippets", "import"},
	"cifs":        {"images", "rootdir", "vztmpl", "iso", "backup", "snippets", "import"},
	"cephfs":      {"vztmpl", "iso", "backup", "snippets", "import"},
	"lvm":         {"images", "rootdir"},
	"lvmthin":     {"images", "rootdir"},
	"zfspool":     {"images", "rootdir"},
	"zfs":         {"images"},
	"rbd":         {"images", "rootdir"},
	"iscsi":       {"images", "none"},
	"iscsidirect": {"images", "none"},
	"pbs":         {"backup", "none"},
	"esxi":        {"import"},
}

// SetStorageContent is `pvesm set STORAGE --content LIST` on a node (pvesm.pm's cmddef
// `set` is PVE::API2::Storage::Config->update). It returns the warnings pvesm prints and,
// on failure, pvesm's error text; the storage is unchanged on failure. Sources:
//   - the parameter schema (format pve-storage-content-list, Plugin.pm verify_content) refuses
//     an unknown type before the handler runs: "400 Parameter verification failed." and
//     "content: invalid format - invalid content type 'X'" (the API schema checker's text);
//   - update runs under PVE::Storage::lock_storage_config(..., "update storage failed"),
//     which prefixes any error with "update storage failed: ";
//   - storage_config (Storage.pm): "storage 'X' does not exist";
//   - check_config -> Plugin.pm decode_value: a type the plugin does not support is warned
//     about ("storage does not support content type 'X'") and dropped; nothing left on a
//     plugin without 'none' dies "storage does not support content type 'none'"; 'none'
//     with other types dies "unable to combine 'none' with other content types".
func (s *Server) SetStorageContent(storage string, content []string) (warnings []string, err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	valid := map[string]bool{"import": true}
	for _, c := range pluginContent["dir"] { // verify_content: dir includes all other types
		valid[c] = true
	}
	for _, c := range content {
		if !valid[c] {
			return nil, errf("400 Parameter verification failed.\ncontent: invalid format - invalid content type '%s'", c)
		}
	}
	ss := s.st.storage(storage)
	if ss == nil {
		return nil, errf("update storage failed: storage '%s' does not exist", storage)
	}
	supported := map[string]bool{}
	for _, c := range pluginContent[ss.spec.Type] {
		supported[c] = true
	}
	var kept []string
	seen := map[string]bool{}
	for _, c := range content {
		if !supported[c] {
			warnings = append(warnings, fmt.Sprintf("storage does not support content type '%s'", c))
			continue
		}
		if !seen[c] {
			seen[c] = true
			kept = append(kept, c)
		}
	}
	if seen["none"] && len(kept) > 1 {
		return warnings, errf("update storage failed: unable to combine 'none' with other content types")
	}
	if len(kept) == 0 && !supported["none"] {
		return warnings, errf("update storage failed: storage does not support content type 'none'")
	}
	ss.spec.Content = kept
	return warnings, nil
}

// VolumePath is `pvesm path VOLID` on the node (pvesm.pm `path`): where the volume's file is.
// The parameter's format pve-volume-id is Plugin.pm parse_volume_id ("unable to parse volume
// ID 'X'", reported by the schema check as "400 Parameter verification failed." and
// "volume: invalid format - ..."); PVE::Storage::path then needs storage_config ("storage 'X'
// does not exist", Storage.pm).
func (s *Server) VolumePath(volid string) (string, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	m := reVolumeID.FindStringSubmatch(volid)
	if m == nil {
		return "", errf("400 Parameter verification failed.\nvolume: invalid format - unable to parse volume ID '%s'", volid)
	}
	ss := s.st.storage(m[1])
	if ss == nil {
		return "", errf("storage '%s' does not exist", m[1])
	}
	return volumePath(ss, volid), nil
}

// reVolumeID is Plugin.pm parse_volume_id's pattern.
var reVolumeID = regexp.MustCompile(`(?i)^([a-z][a-z0-9\-_.]*[a-z0-9]):(.+)$`)

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

// RemoveNodeFile is a file removed (or renamed away) on the node as root: a file in a
// storage's snippets directory stops being that storage's snippet volume. Other paths are not
// modelled (no-op).
func (s *Server) RemoveNodeFile(path string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, ss := range s.st.storages {
		dir := strings.TrimSuffix(volumePath(ss, ss.spec.Name+":snippets/x"), "x")
		name, ok := strings.CutPrefix(path, dir)
		if !ok || name == "" || strings.Contains(name, "/") {
			continue
		}
		ss.removeVolume(ss.spec.Name + ":snippets/" + name)
		return
	}
}

// ReadNodeFile is a file read on the node: a snippet volume's content (the node's other
// files are not modelled).
func (s *Server) ReadNodeFile(path string) ([]byte, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, ss := range s.st.storages {
		dir := strings.TrimSuffix(volumePath(ss, ss.spec.Name+":snippets/x"), "x")
		name, ok := strings.CutPrefix(path, dir)
		if !ok || name == "" || strings.Contains(name, "/") {
			continue
		}
		if v := ss.volume(ss.spec.Name + ":snippets/" + name); v != nil {
			return []byte(v.Data), true
		}
	}
	return nil, false
}
