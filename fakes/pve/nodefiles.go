package pve

import (
	"fmt"
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
