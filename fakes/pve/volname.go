package pve

import (
	"fmt"
	"regexp"
	"sort"
	"strconv"
	"strings"

	"github.com/aimachine/aimachine/fakes/pve/jsonschema"
)

// volInfo is what a storage plugin's parse_volname returns.
type volInfo struct {
	vtype  string // images, rootdir, iso, vztmpl, backup, snippets, import
	name   string
	vmid   int
	format string // raw, qcow2, vmdk, subvol, ova+qcow2 …; "" when the plugin gives none
}

// pve-storage src/PVE/Storage.pm: file-name rules of the content types (PVE 9.1).
var (
	reISOVol     = regexp.MustCompile(`^iso/([^/]+\.(?i:iso|img))$`)                                  // $ISO_EXT_RE_0
	reVztmplVol  = regexp.MustCompile(`^vztmpl/([^/]+\.(?i:tar|tar\.(?:gz|xz|zst|bz2)))$`)            // $VZTMPL_EXT_RE_1
	reBackupVol  = regexp.MustCompile(`^backup/([^/]+\.(tgz|(?:tar|vma)(?:\.(?:gz|lzo|zst|bz2))?))$`) // $BACKUP_EXT_RE_2
	reBackupVMID = regexp.MustCompile(`^vzdump-(openvz|lxc|qemu)-(\d+)-.+`)
	reSnippetVol = regexp.MustCompile(`^snippets/([^/]+)$`)
	reOVAVol     = regexp.MustCompile(`^import/([ a-zA-Z0-9\-\.\+\=\_]+\.ova/[ a-zA-Z0-9\-\.\+\=\_]+\.(qcow2|raw|vmdk))$`) // $OVA_CONTENT_RE_1
	reImportVol  = regexp.MustCompile(`^import/([ a-zA-Z0-9\-\.\+\=\_]+\.(ova|ovf|qcow2|raw|vmdk))$`)                      // $IMPORT_EXT_RE_1
	reImagesBase = regexp.MustCompile(`^(\d+)/(\S+)/(\d+)/(\S+)$`)
	reImages     = regexp.MustCompile(`^(\d+)/(\S+)$`)
	reNameDir    = regexp.MustCompile(`^((vm-|base-|subvol-)(\d+)-[^/\s]+\.(raw|qcow2|vmdk|subvol))$`)
	reNameDirAny = regexp.MustCompile(`^((base-)?[^/\s]+\.(raw|qcow2|vmdk|subvol))$`)
	reLVMThin    = regexp.MustCompile(`^((vm|base)-(\d+)-\S+)$`)
	reLVM        = regexp.MustCompile(`^(vm-(\d+)-\S+)$`)
	reZFS        = regexp.MustCompile(`^(((base|basevol)-(\d+)-\S+)/)?((base|basevol|vm|subvol)-(\d+)-\S+)$`)
	reQemuFormat = regexp.MustCompile(`^(raw|qcow|qcow2|qed|vmdk|cloop)$`) // qemu-server Drive.pm $QEMU_FORMAT_RE
)

// parseNameDir is pve-storage Plugin.pm parse_name_dir.
func parseNameDir(name string) (string, error) {
	if m := reNameDir.FindStringSubmatch(name); m != nil {
		return m[4], nil
	}
	if strings.HasPrefix(name, "snap-") && strings.HasSuffix(name, ".qcow2") {
		return "", fmt.Errorf("'%s' is a snapshot filename, not a volume!", name)
	}
	if m := reNameDirAny.FindStringSubmatch(name); m != nil {
		return m[3], nil
	}
	return "", fmt.Errorf("unable to parse volume filename '%s'", name)
}

// parseVolname is the storage plugin's parse_volname for a storage type: pve-storage
// src/PVE/Storage/Plugin.pm (dir, nfs, cifs … file based), LvmThinPlugin.pm, LVMPlugin.pm,
// ZFSPoolPlugin.pm. Errors are the plugins' die texts.
func parseVolname(storageType, volname string) (volInfo, error) {
	switch storageType {
	case "lvmthin":
		if m := reLVMThin.FindStringSubmatch(volname); m != nil {
			n, _ := strconv.Atoi(m[3])
			return volInfo{vtype: "images", name: m[1], vmid: n, format: "raw"}, nil
		}
		return volInfo{}, fmt.Errorf("unable to parse lvm volume name '%s'", volname)
	case "lvm":
		if m := reLVM.FindStringSubmatch(volname); m != nil {
			n, _ := strconv.Atoi(m[2])
			f := "raw"
			if strings.HasSuffix(volname, ".qcow2") {
				f = "qcow2"
			}
			return volInfo{vtype: "images", name: m[1], vmid: n, format: f}, nil
		}
		return volInfo{}, fmt.Errorf("unable to parse lvm volume name '%s'", volname)
	case "zfspool":
		if m := reZFS.FindStringSubmatch(volname); m != nil {
			n, _ := strconv.Atoi(m[7])
			f := "raw"
			if m[6] == "subvol" || m[6] == "basevol" {
				f = "subvol"
			}
			return volInfo{vtype: "images", name: m[5], vmid: n, format: f}, nil
		}
		return volInfo{}, fmt.Errorf("unable to parse zfs volume name '%s'", volname)
	}
	if m := reImagesBase.FindStringSubmatch(volname); m != nil {
		if _, err := parseNameDir(m[2]); err != nil {
			return volInfo{}, err
		}
		f, err := parseNameDir(m[4])
		if err != nil {
			return volInfo{}, err
		}
		n, _ := strconv.Atoi(m[3])
		return volInfo{vtype: "images", name: m[4], vmid: n, format: f}, nil
	}
	if m := reImages.FindStringSubmatch(volname); m != nil {
		f, err := parseNameDir(m[2])
		if err != nil {
			return volInfo{}, err
		}
		n, _ := strconv.Atoi(m[1])
		return volInfo{vtype: "images", name: m[2], vmid: n, format: f}, nil
	}
	if m := reISOVol.FindStringSubmatch(volname); m != nil {
		return volInfo{vtype: "iso", name: m[1], format: "raw"}, nil
	}
	if m := reVztmplVol.FindStringSubmatch(volname); m != nil {
		return volInfo{vtype: "vztmpl", name: m[1], format: "raw"}, nil
	}
	if m := reBackupVol.FindStringSubmatch(volname); m != nil {
		vi := volInfo{vtype: "backup", name: m[1], format: "raw"}
		if b := reBackupVMID.FindStringSubmatch(m[1]); b != nil {
			vi.vmid, _ = strconv.Atoi(b[2])
		}
		return vi, nil
	}
	if m := reSnippetVol.FindStringSubmatch(volname); m != nil {
		return volInfo{vtype: "snippets", name: m[1], format: "raw"}, nil
	}
	if m := reOVAVol.FindStringSubmatch(volname); m != nil {
		return volInfo{vtype: "import", name: m[1], format: "ova+" + m[2]}, nil
	}
	if m := reImportVol.FindStringSubmatch(volname); m != nil {
		return volInfo{vtype: "import", name: m[1], format: m[2]}, nil
	}
	return volInfo{}, fmt.Errorf("unable to parse directory volume name '%s'", volname)
}

var reVolID = regexp.MustCompile(`^(?i:([a-z][a-z0-9\-\_\.]*[a-z0-9])):(.+)$`)

// parseVolumeID is pve-storage Plugin.pm parse_volume_id; ok is false for a path (noerr).
func parseVolumeID(volid string) (storeid, volname string, ok bool) {
	m := reVolID.FindStringSubmatch(volid)
	if m == nil {
		return "", "", false
	}
	return m[1], m[2], true
}

// storageParseVolname is PVE::Storage::parse_volname: the storage must exist (storage_config).
// Called with s.mu held.
func (s *Server) storageParseVolname(volid string) (*storageState, volInfo, error) {
	store, volname, ok := parseVolumeID(volid)
	if !ok {
		return nil, volInfo{}, fmt.Errorf("unable to parse volume ID '%s'", volid)
	}
	ss := s.st.storage(store)
	if ss == nil {
		return nil, volInfo{}, fmt.Errorf("storage '%s' does not exist", store)
	}
	vi, err := parseVolname(ss.spec.Type, volname)
	return ss, vi, err
}

// checkedParseVolname is qemu-server src/PVE/QemuServer/Drive.pm checked_parse_volname.
func (s *Server) checkedParseVolname(volid string) (volInfo, error) {
	_, vi, err := s.storageParseVolname(volid)
	if err != nil {
		return vi, err
	}
	if vi.vtype == "import" {
		if vi.format == "" {
			return vi, fmt.Errorf("unable to parse format for import volume '%s'", volid)
		}
		if ext, ok := strings.CutPrefix(vi.format, "ova+"); ok {
			if !reQemuFormat.MatchString(ext) {
				return vi, fmt.Errorf("volume '%s' - unknown import format '%s'", volid, vi.format)
			}
			return vi, nil
		}
	}
	if vi.format == "" {
		vi.format = "raw"
	}
	if !reQemuFormat.MatchString(vi.format) {
		return vi, fmt.Errorf("volume '%s' - not a QEMU image format '%s'", volid, vi.format)
	}
	return vi, nil
}

// reNewDiskPVE is qemu-server Drive.pm $NEW_DISK_RE: "[STORAGE:]SIZE".
var reNewDiskPVE = regexp.MustCompile(`^(([^/:\s]+):)?(\d+(\.\d+)?)$`)

func isCloudinitVolid(volid string) bool {
	if volid == "cloudinit" {
		return true
	}
	_, volname, ok := parseVolumeID(volid)
	return ok && volname == "cloudinit"
}

// checkStorageAccess is qemu-server src/PVE/API2/Qemu.pm $check_storage_access for the drives in
// keys (sorted): new disks need an existing storage with images content (400 on "storage"), existing
// volumes must parse on their storage and hold images or iso (400 on the drive), and an
// import-from source must parse with checked_parse_volname and be of type images or import.
// Called with s.mu held.
func (s *Server) checkStorageAccess(p params, keys []string, defaultStorage string) error {
	for _, k := range keys {
		if !jsonschema.IsValidDriveName(k) {
			continue
		}
		d := parseDrive(p.get(k))
		volid := d.file
		_, volname, managed := parseVolumeID(volid)
		switch {
		case volid == "" || volid == "none" || volid == "cloudinit" || (managed && volname == "cloudinit"):
		case d.isCDROM() && volid == "cdrom":
		case !d.isCDROM() && reNewDiskPVE.MatchString(volid):
			m := reNewDiskPVE.FindStringSubmatch(volid)
			store := m[2]
			if store == "" {
				store = defaultStorage
			}
			if store == "" {
				return errDie("no storage ID specified (and no default storage)")
			}
			ss := s.st.storage(store)
			if ss == nil {
				return errDie("storage '%s' does not exist", store)
			}
			if !ss.hasContent("images") {
				return errParam("storage", fmt.Sprintf("storage '%s' does not support vm images", store))
			}
		default:
			// PVE::Storage::check_volume_access parses the volume name
			if managed {
				_, vi, err := s.storageParseVolname(volid)
				if err != nil {
					return errDie("%v", err)
				}
				if vi.vtype != "images" && vi.vtype != "iso" {
					return errParam(k, "content type needs to be 'images' or 'iso'")
				}
			}
		}
		src := d.opts["import-from"]
		if src == "" {
			continue
		}
		if _, _, ok := parseVolumeID(src); ok {
			vi, err := s.checkedParseVolname(src)
			if err != nil {
				return errDie("%v", err)
			}
			if vi.vtype != "images" && vi.vtype != "import" {
				return errParam(k, fmt.Sprintf("%s has wrong type '%s' - needs to be 'images' or 'import'", src, vi.vtype))
			}
		}
	}
	return nil
}

// checkDriveParam is qemu-server src/PVE/API2/Qemu.pm $check_drive_param: import-from needs
// "STORAGE:0", an efidisk import needs efitype and pre-enrolled-keys, an iso needs media=cdrom; the
// drive is then printed back the way print_drive does. Called with s.mu held.
func (s *Server) checkDriveParam(p params, keys []string) error {
	for _, k := range keys {
		if !jsonschema.IsValidDriveName(k) {
			continue
		}
		d := parseDrive(p.get(k))
		if d.opts["import-from"] != "" {
			m := reNewDiskPVE.FindStringSubmatch(d.file)
			if m == nil || m[3] != "0" {
				return errParam(k, "'import-from' requires special syntax - use <storage ID>:0,import-from=<source>")
			}
			if k == "efidisk0" {
				for _, req := range []string{"efitype", "pre-enrolled-keys"} {
					if _, ok := d.opts[req]; !ok {
						return errParam(k, fmt.Sprintf("need to specify '%s' when using 'import-from'", req))
					}
				}
			} else if k == "tpmstate0" {
				if _, ok := d.opts["version"]; !ok {
					return errParam(k, "need to specify 'version' when using 'import-from'")
				}
			}
		}
		if _, volname, ok := parseVolumeID(d.file); ok && !reNewDiskPVE.MatchString(d.file) && volname != "cloudinit" {
			_, vi, err := s.storageParseVolname(d.file)
			if err != nil {
				return errDie("%v", err)
			}
			if vi.vtype == "iso" && d.opts["media"] != "cdrom" {
				return errParam(k, "explicit 'media=cdrom' is required for iso images")
			}
		}
		if printed, ok := printDrive(k, p.get(k)); ok {
			p.vals[k] = printed
		}
	}
	return nil
}

// printDrive is qemu-server print_drive: the drive's property string printed with
// print_property_string (file first, the rest sorted, sizes with format_size, aliases resolved).
func printDrive(key, value string) (string, bool) {
	op, _, _ := apiSchema.Find("POST", []string{"nodes", "x", "qemu"})
	if op == nil {
		return "", false
	}
	s := paramSchema(op, key)
	if s == nil || s.FormatSchema == nil {
		return "", false
	}
	m, err := jsonschema.ParsePropertyString(s.FormatSchema, value, key)
	if err != nil {
		return "", false
	}
	out, err := jsonschema.PrintPropertyString(m, s.FormatSchema)
	if err != nil {
		return "", false
	}
	return out, true
}

// listable tells whether a storage listing shows a volume: pve-storage lists only names its plugin
// parses (Plugin.pm list_volumes / get_subdir scans by these rules), of a content type the storage has.
func listable(ss *storageState, volid string) bool {
	_, volname, ok := parseVolumeID(volid)
	if !ok {
		return false
	}
	vi, err := parseVolname(ss.spec.Type, volname)
	if err != nil {
		return false
	}
	ct := vi.vtype
	if ct == "images" && vi.format == "subvol" {
		ct = "rootdir"
	}
	return ss.hasContent(ct) || (ct == "images" && ss.hasContent("rootdir"))
}

// normalizeNets is qemu-server's parse_net/print_net on create and update: netN gets a MAC address
// when it has none (add_random_macs) and is printed back model=MAC first, then the rest sorted.
func normalizeNets(p params, keys []string) {
	op, _, _ := apiSchema.Find("POST", []string{"nodes", "x", "qemu"})
	if op == nil {
		return
	}
	for _, k := range keys {
		if !strings.HasPrefix(k, "net") || !jsonschema.QemuIndexed(k) {
			continue
		}
		s := paramSchema(op, k)
		if s == nil || s.FormatSchema == nil {
			continue
		}
		m, err := jsonschema.ParsePropertyString(s.FormatSchema, p.get(k), k)
		if err != nil {
			continue
		}
		if m["macaddr"] == "" {
			m["macaddr"] = randomMAC()
		}
		if out, err := jsonschema.PrintPropertyString(m, s.FormatSchema); err == nil {
			p.vals[k] = out
		}
	}
}

// normalizeTags is pve-guest-common GuestHelpers.pm get_unique_tags with the default datacenter
// tag-style (not case-sensitive, ordering by name), which create_vm and update_vm_api apply before the
// config is written: tags lower-cased, sorted, duplicates dropped, joined with ';'.
func normalizeTags(p params) {
	if !p.has("tags") {
		return
	}
	seen := map[string]bool{}
	var out []string
	for _, t := range jsonschema.SplitList(p.get("tags")) {
		t = strings.ToLower(t)
		if !seen[t] {
			seen[t] = true
			out = append(out, t)
		}
	}
	sort.Strings(out)
	p.vals["tags"] = strings.Join(out, ";")
}
