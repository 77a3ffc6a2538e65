package pve

import (
	"context"
	"crypto/rand"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// Realistic durations (scaled by WithTimeScale).
const (
	durCreate   = 3 * time.Second
	durImport   = 12 * time.Second
	durConfig   = 500 * time.Millisecond
	durResize   = 1 * time.Second
	durStart    = 2 * time.Second
	durStop     = 1 * time.Second
	durShutdown = 6 * time.Second
	durReboot   = 8 * time.Second
	durDestroy  = 2 * time.Second
)

func confPath(node string, vmid int) string {
	return fmt.Sprintf("nodes/%s/qemu-server/%d.conf", node, vmid)
}

func errNoConfig(node string, vmid int) *apiError {
	return errDie("Configuration file '%s' does not exist", confPath(node, vmid))
}

// vmOn returns the VM on node or the "does not exist" error; called with s.mu held.
func (s *Server) vmOn(node string, vmid int) (*vmState, error) {
	v := s.st.vms[vmid]
	if v == nil || v.node != node {
		return nil, errNoConfig(node, vmid)
	}
	return v, nil
}

func lockErr(lock string) error { return fmt.Errorf("VM is locked (%s)", lock) }

func randomMAC() string {
	b := make([]byte, 3)
	_, _ = rand.Read(b)
	return fmt.Sprintf("BC:24:11:%02X:%02X:%02X", b[0], b[1], b[2])
}

func randomUUID() string {
	b := make([]byte, 16)
	_, _ = rand.Read(b)
	b[6] = (b[6] & 0x0f) | 0x40
	b[8] = (b[8] & 0x3f) | 0x80
	return fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:16])
}

// withMAC adds a generated MAC to a netN value that has none ("virtio,bridge=vmbr0" -> "virtio=BC:24:11:..,bridge=vmbr0").
func withMAC(v string) string {
	parts := strings.Split(v, ",")
	if len(parts) == 0 || strings.Contains(parts[0], "=") {
		kv, _ := parsePropString(v, "model")
		for _, m := range []string{"virtio", "e1000", "e1000e", "rtl8139", "vmxnet3"} {
			if _, ok := kv[m]; ok {
				return v
			}
		}
		return v
	}
	parts[0] = parts[0] + "=" + randomMAC()
	return strings.Join(parts, ",")
}

func netMAC(v string) string {
	first, _, _ := strings.Cut(v, ",")
	_, mac, _ := strings.Cut(first, "=")
	return mac
}

// --- list / status ---

func (s *Server) vmStatus(v *vmState, current bool) map[string]any {
	m := map[string]any{
		"vmid": v.vmid, "name": vmName(v), "status": "stopped", "cpus": vcpus(v.conf),
		"maxmem": uint64(memoryMiB(v.conf)) << 20, "maxdisk": bootDiskSize(v.conf),
		"mem": 0, "disk": 0, "cpu": 0, "uptime": 0, "netin": 0, "netout": 0, "diskread": 0, "diskwrite": 0,
	}
	if v.conf["template"] == "1" {
		m["template"] = 1
	}
	if l := v.conf["lock"]; l != "" {
		m["lock"] = l
	}
	if t := v.conf["tags"]; t != "" {
		m["tags"] = t
	}
	if current {
		m["qmpstatus"] = "stopped"
		m["ha"] = map[string]any{"managed": 0}
		if agentEnabled(v.conf) {
			m["agent"] = 1
		}
		if vga := v.conf["vga"]; vga != "" {
			m["clipboard"] = nil
		}
	}
	if v.running {
		up := int64(time.Since(v.started) / time.Second)
		maxmem := uint64(memoryMiB(v.conf)) << 20
		m["status"], m["pid"], m["uptime"] = "running", v.pid, up
		m["cpu"], m["mem"] = 0.0123, maxmem/4
		m["netin"], m["netout"] = 81920+up*1200, 40960+up*300
		m["diskread"], m["diskwrite"] = uint64(734003200), uint64(104857600)
		if current {
			machine := "pc-i440fx-9.2+pve1"
			if isQ35(v.conf["machine"]) {
				machine = "pc-q35-9.2+pve1"
			}
			qemuVer := "9.2.0"
			if s.versionAtLeast(9, 0) {
				qemuVer = "10.0.2"
				machine = strings.Replace(machine, "9.2", "10.0", 1)
			}
			m["qmpstatus"] = "running"
			m["running-machine"] = machine
			m["running-qemu"] = qemuVer
			m["freemem"] = maxmem - maxmem/4
			m["balloon"] = maxmem
			m["ballooninfo"] = map[string]any{"actual": maxmem, "max_mem": maxmem, "free_mem": maxmem - maxmem/4,
				"total_mem": maxmem - 64<<20, "major_page_faults": 1811, "minor_page_faults": 380379,
				"mem_swapped_in": 0, "mem_swapped_out": 0, "last_update": time.Now().Unix()}
			m["blockstat"] = map[string]any{}
			nics := map[string]any{}
			for _, k := range sortedKeys(v.conf) {
				if strings.HasPrefix(k, "net") {
					nics[fmt.Sprintf("tap%di%s", v.vmid, strings.TrimPrefix(k, "net"))] = map[string]any{"netin": m["netin"], "netout": m["netout"]}
				}
			}
			m["nics"] = nics
			m["proxmox-support"] = map[string]any{"backup-max-workers": true, "pbs-dirty-bitmap": true,
				"pbs-dirty-bitmap-migration": true, "pbs-dirty-bitmap-savevm": true, "pbs-library-version": "1.5.1 (UNKNOWN)",
				"pbs-masterkey": true, "query-bitmap-info": true}
		}
	}
	return m
}

func handleQemuList(s *Server, c *call) (any, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := []map[string]any{}
	for _, v := range s.st.vmsSorted() {
		if v.node == c.vars["node"] {
			out = append(out, s.vmStatus(v, c.p.get("full") == "1"))
		}
	}
	return out, nil
}

func handleStatusCurrent(s *Server, c *call) (any, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	v, err := s.vmOn(c.vars["node"], c.vmid())
	if err != nil {
		return nil, err
	}
	return s.vmStatus(v, true), nil
}

func handleConfigGet(s *Server, c *call) (any, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	v, err := s.vmOn(c.vars["node"], c.vmid())
	if err != nil {
		return nil, err
	}
	return coerceConfig(v.conf), nil
}

// --- create ---

// checkHostpciPerm is check_hostpci_perm: raw host= values only for the user root@pam exactly;
// a romfile only for root@pam too (400).
func checkHostpciPerm(id *identity, key, value string) error {
	if id.authUser() == "root@pam" || value == "" {
		return nil
	}
	if kv, _ := parsePropString(value, "host"); kv["romfile"] != "" {
		return errParam(key, "only root@pam can set 'romfile' option")
	}
	if !hostpciIsRaw(value) {
		return nil
	}
	return errDie("only root can set '%s' config for non-mapped devices", key)
}

// checkNewDisks validates disk values at call time (storage exists and holds images; iso needs media=cdrom).
func (s *Server) checkNewDisks(node string, p params, keys []string) error {
	if err := s.checkStorageAccess(p, keys, p.get("storage")); err != nil {
		return err
	}
	if err := s.checkDriveParam(p, keys); err != nil {
		return err
	}
	normalizeNets(p, keys)
	normalizeTags(p)
	return nil
}

func handleCreate(s *Server, c *call) (any, error) {
	node, vmid := c.vars["node"], 0
	vmid, _ = strconv.Atoi(c.p.get("vmid"))
	keys := sortedKeys(c.p.vals)
	// qemu-server API2/Qemu.pm create_vm: sshkeys, then $check_storage_access, then the
	// hostpci permission, then $check_drive_param and add_random_macs
	if c.p.has("sshkeys") {
		if err := validateSSHKeys(c.p.get("sshkeys")); err != nil {
			return nil, err
		}
	}
	// the privileges of $check_storage_access, $check_vm_modify_config_perm, the hostpci and
	// bridge checks (vmperms.go); root@pam passes
	if err := s.checkVMCreatePerms(c.id, c.p.get("vmid"), c.p, keys); err != nil {
		return nil, err
	}
	s.mu.Lock()
	if err := s.checkNewDisks(node, c.p, keys); err != nil {
		s.mu.Unlock()
		return nil, err
	}
	for _, k := range keys {
		if strings.HasPrefix(k, "hostpci") {
			if err := checkHostpciPerm(c.id, k, c.p.get(k)); err != nil {
				s.mu.Unlock()
				return nil, err
			}
		}
	}
	if old := s.st.vms[vmid]; old != nil {
		s.mu.Unlock()
		return nil, errDie("unable to create VM %d - VM %d already exists on node '%s'", vmid, vmid, old.node)
	}
	conf := map[string]string{"lock": "create"}
	for _, k := range keys {
		switch k {
		case "vmid", "start", "storage", "pool", "unique", "force", "archive", "bwlimit", "live-restore":
			continue
		}
		conf[k] = c.p.get(k)
	}
	v := &vmState{node: node, vmid: vmid, conf: conf}
	s.st.vms[vmid] = v
	s.mu.Unlock()

	start := c.p.get("start") == "1"
	// qemu-server src/PVE/API2/Qemu.pm create_vm: the config (lock: create) is written by
	// create_and_lock_config before the fork; when the qmcreate worker fails, $createfn frees
	// every volume it allocated (vdisk_free over $vollist) and the worker unlinks the config
	// file before it dies. A failed create, also an injected one, leaves nothing behind.
	cleanup := func() {
		s.mu.Lock()
		defer s.mu.Unlock()
		if s.st.vms[vmid] == v {
			s.freeVolumes(v)
			delete(s.st.vms, vmid)
		}
	}
	upid := s.startTaskCleanup(node, "qmcreate", itoa(vmid), c.id, func(tc *taskCtx) error {
		err := s.createWorker(tc, v)
		if err != nil {
			return fmt.Errorf("unable to create VM %d - %v", vmid, err)
		}
		s.newGuest(v)
		if start {
			if err := s.startWorker(tc, v, false); err != nil {
				tc.warnf("start failed: %v", err)
			}
		}
		return nil
	}, cleanup)
	return upid, nil
}

// createWorker allocates disks and finishes the config inside the qmcreate task.
func (s *Server) createWorker(tc *taskCtx, v *vmState) error {
	if !tc.sleep(durCreate / 2) {
		return errInterrupted
	}
	s.mu.Lock()
	keys := sortedKeys(v.conf)
	s.mu.Unlock()
	for _, k := range keys {
		if !reDiskKey.MatchString(k) {
			continue
		}
		s.mu.Lock()
		orig := v.conf[k]
		val, err := s.allocateDrive(tc, v, k, orig)
		s.mu.Unlock()
		if err != nil {
			return err
		}
		if d := parseDrive(orig); d.opts["import-from"] != "" {
			if !tc.sleep(durImport) {
				return errInterrupted
			}
		}
		s.mu.Lock()
		v.conf[k] = val
		s.mu.Unlock()
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, k := range sortedKeys(v.conf) {
		if strings.HasPrefix(k, "net") {
			v.conf[k] = withMAC(v.conf[k])
		}
	}
	if _, ok := v.conf["smbios1"]; !ok {
		v.conf["smbios1"] = "uuid=" + randomUUID()
	}
	if _, ok := v.conf["vmgenid"]; !ok {
		v.conf["vmgenid"] = randomUUID()
	}
	qemuVer := "9.2.0"
	if s.versionAtLeast(9, 0) {
		qemuVer = "10.0.2"
	}
	v.conf["meta"] = fmt.Sprintf("creation-qemu=%s,ctime=%d", qemuVer, time.Now().Unix())
	if _, ok := v.conf["boot"]; !ok {
		v.conf["boot"] = "order=" + strings.Join(defaultBootDevices(v.conf), ";")
	}
	delete(v.conf, "lock")
	return nil
}

// allocateDrive turns "STORE:SIZE", "STORE:0,import-from=VOL" and "STORE:cloudinit" into volumes;
// called with s.mu held.
func (s *Server) allocateDrive(tc *taskCtx, v *vmState, key, val string) (string, error) {
	d := parseDrive(val)
	if m := reCloudInit.FindStringSubmatch(d.file); m != nil {
		ss, err := s.storageOn(v.node, m[1])
		if err != nil {
			return "", err
		}
		volid := s.newVolume(ss, v.vmid, "cloudinit", d.opts["format"], 4<<20)
		delete(d.opts, "format")
		tc.t.lines = append(tc.t.lines, fmt.Sprintf("  Logical volume \"vm-%d-cloudinit\" created.", v.vmid))
		d.file = volid
		d.opts["media"] = "cdrom"
		return d.String(), nil
	}
	m := reNewDisk.FindStringSubmatch(d.file)
	if m == nil {
		return val, nil
	}
	ss, err := s.storageOn(v.node, m[1])
	if err != nil {
		return "", err
	}
	gib, _ := strconv.ParseFloat(m[2], 64)
	size := uint64(gib * (1 << 30))
	if key == "efidisk0" {
		size = 4 << 20
	}
	if key == "tpmstate0" {
		size = 4 << 20
	}
	if src := d.opts["import-from"]; src != "" {
		store, _, _ := strings.Cut(src, ":")
		srcStore, err := s.storageOn(v.node, store)
		if err != nil {
			return "", err
		}
		vol := srcStore.volume(src)
		if vol == nil {
			return "", fmt.Errorf("volume '%s' does not exist", src)
		}
		if c := volumeContent(src); c != "import" && c != "images" {
			return "", fmt.Errorf("'%s' has wrong type '%s' - needs to be 'images' or 'import'", src, c)
		}
		size = vol.Size
		delete(d.opts, "import-from")
		tc.t.lines = append(tc.t.lines, fmt.Sprintf("importing disk '%s' to VM %d ...", src, v.vmid))
	}
	volid := s.newVolume(ss, v.vmid, "disk", d.opts["format"], size)
	delete(d.opts, "format") // qemu-server create_disks: "no longer needed"
	_, short, _ := strings.Cut(volid, ":")
	tc.t.lines = append(tc.t.lines, fmt.Sprintf("  Logical volume \"%s\" created.", short))
	if size > 0 && d.opts["size"] == "" {
		tc.t.lines = append(tc.t.lines, fmt.Sprintf("transferred %s of %s (100.00%%)", humanSize(size), humanSize(size)))
	}
	d.file = volid
	d.opts["size"] = formatSize(size)
	return d.String(), nil
}

func humanSize(b uint64) string {
	return fmt.Sprintf("%.1f GiB", float64(b)/(1<<30))
}

// newVolume creates vm-<vmid>-disk-<n> (or vm-<vmid>-cloudinit) on a storage; called with s.mu held.
// On a directory storage the file is <vmid>/<name>.<format>: a disk in the drive's format= or the
// storage's default, raw (pve-storage DirPlugin.pm plugindata format default 'raw'); a cloud-init
// drive in qcow2 unless format= says otherwise (qemu-server API2/Qemu.pm create_disks).
func (s *Server) newVolume(ss *storageState, vmid int, kind, format string, size uint64) string {
	name := fmt.Sprintf("vm-%d-cloudinit", vmid)
	dir := ss.spec.Type == "dir" || ss.spec.Type == "nfs" || ss.spec.Type == "cifs"
	if format == "" {
		format = "raw"
		if kind == "cloudinit" && dir {
			format = "qcow2"
		}
	}
	if kind == "disk" {
		for n := 0; ; n++ {
			name = fmt.Sprintf("vm-%d-disk-%d", vmid, n)
			taken := false
			for _, f := range []string{"raw", "qcow2", "vmdk"} {
				if ss.volume(fmt.Sprintf("%s:%d/%s.%s", ss.spec.Name, vmid, name, f)) != nil {
					taken = true
				}
			}
			if !taken && ss.volume(ss.spec.Name+":"+name) == nil {
				break
			}
		}
	}
	volid := ss.spec.Name + ":" + name
	if dir {
		volid = fmt.Sprintf("%s:%d/%s.%s", ss.spec.Name, vmid, name, format)
	} else {
		format = "raw"
	}
	ss.volumes = append(ss.volumes, &VolumeSpec{VolID: volid, Format: format, Size: size, VMID: vmid})
	return volid
}

// freeVolumes removes every volume owned by the VM; called with s.mu held.
func (s *Server) freeVolumes(v *vmState) []string {
	var freed []string
	for _, ss := range s.st.storages {
		for _, vol := range append([]*VolumeSpec(nil), ss.volumes...) {
			if vol.VMID == v.vmid {
				ss.removeVolume(vol.VolID)
				freed = append(freed, vol.VolID)
			}
		}
	}
	return freed
}

func (s *Server) newGuest(v *vmState) {
	f := s.opts.guests
	if f == nil {
		return
	}
	s.mu.Lock()
	s.st.incarnations++
	inc := fmt.Sprintf("%d-%d-%s", v.vmid, s.st.incarnations, randomHex(4))
	v.incarnation = inc
	node := v.node
	s.mu.Unlock()
	g, err := f.NewGuest(VMIdentity{Node: node, VMID: v.vmid, Incarnation: inc}, &host{s: s, node: node})
	if err != nil {
		s.log().Warn("guest factory failed", "vmid", v.vmid, "err", err)
		return
	}
	s.mu.Lock()
	v.guest = g
	s.mu.Unlock()
}

// host is the fake host as a guest sees it.
type host struct {
	s    *Server
	node string
}

func (h *host) Scale(d time.Duration) time.Duration { return h.s.Scale(d) }

func (h *host) GuestPoweredOff(vmid int) {
	h.s.mu.Lock()
	defer h.s.mu.Unlock()
	if v := h.s.st.vms[vmid]; v != nil && v.node == h.node && v.running {
		v.running, v.pid = false, 0
		h.s.releasePCI(v)
	}
}

// --- config update ---

func (s *Server) checkSkiplock(c *call) error {
	if c.p.get("skiplock") == "1" && c.id.authUser() != "root@pam" {
		return errParam("skiplock", "Only root may use this option.")
	}
	return nil
}

// checkConfigUpdate runs update_vm_api's synchronous checks; called with s.mu held.
func (s *Server) checkConfigUpdate(c *call, v *vmState) error {
	// qemu-server API2/Qemu.pm $update_vm_api $load_and_check_config: the digest, then the lock
	if err := checkDigest(c, v); err != nil {
		return err
	}
	if l := v.conf["lock"]; l != "" && c.p.get("skiplock") != "1" {
		return errDie("VM is locked (%s)", l)
	}
	keys := sortedKeys(c.p.vals)
	for _, k := range keys {
		if strings.HasPrefix(k, "hostpci") {
			if err := checkHostpciPerm(c.id, k, v.conf[k]); err != nil {
				return err
			}
			if err := checkHostpciPerm(c.id, k, c.p.get(k)); err != nil {
				return err
			}
		}
	}
	for _, k := range deleteList(c.p.get("delete")) {
		if strings.HasPrefix(k, "hostpci") {
			if err := checkHostpciPerm(c.id, k, v.conf[k]); err != nil {
				return err
			}
		}
		if _, ok := vmKeyType(k); !ok {
			return errParam("delete", fmt.Sprintf("invalid format - invalid configuration key '%s'\n", k))
		}
	}
	if err := s.checkNewDisks(v.node, c.p, keys); err != nil {
		return err
	}
	if c.p.has("sshkeys") {
		if err := validateSSHKeys(c.p.get("sshkeys")); err != nil {
			return err
		}
	}
	return nil
}

// checkDigest is update_vm_api's compare-and-swap (qemu-server src/PVE/API2/Qemu.pm,
// $load_and_check_config): "checksum mismatch (file change by other user?)" when the digest
// sent is not the current config's. PVE runs it before forking and again inside
// lock_config, so two writers with the same digest cannot both succeed. Called with s.mu held.
func checkDigest(c *call, v *vmState) error {
	if d := c.p.get("digest"); d != "" && d != configDigest(v.conf) {
		return errDie("checksum mismatch (file change by other user?)")
	}
	return nil
}

func deleteList(s string) []string {
	var out []string
	for _, f := range strings.FieldsFunc(s, func(r rune) bool { return r == ',' || r == ';' || r == ' ' || r == '\x00' }) {
		out = append(out, f)
	}
	return out
}

// applyConfig writes the update into the config; called with s.mu held.
func (s *Server) applyConfig(tc *taskCtx, c *call, v *vmState) error {
	for _, k := range deleteList(c.p.get("delete")) {
		old, ok := v.conf[k]
		if !ok {
			continue
		}
		delete(v.conf, k)
		if reDiskKey.MatchString(k) || strings.HasPrefix(k, "unused") {
			d := parseDrive(old)
			if strings.Contains(d.file, "cloudinit") || strings.HasPrefix(k, "unused") {
				s.removeVolid(d.file)
				continue
			}
			if !d.isCDROM() && strings.Contains(d.file, ":") {
				for n := 0; ; n++ {
					if _, used := v.conf[fmt.Sprintf("unused%d", n)]; !used {
						v.conf[fmt.Sprintf("unused%d", n)] = d.file
						break
					}
				}
			}
		}
	}
	for _, k := range sortedKeys(c.p.vals) {
		switch k {
		// qemu-server API2/Qemu.pm $update_vm_api extracts node and vmid (path) before the options
		case "delete", "revert", "digest", "skiplock", "force", "background_delay", "node", "vmid", "skip_cloud_init", "import-working-storage":
			continue
		}
		val := c.p.get(k)
		if reDiskKey.MatchString(k) {
			nv, err := s.allocateDrive(tc, v, k, val)
			if err != nil {
				return err
			}
			val = nv
		}
		if strings.HasPrefix(k, "net") {
			val = withMAC(val)
		}
		v.conf[k] = val
	}
	return nil
}

func (s *Server) removeVolid(volid string) {
	store, _, _ := strings.Cut(volid, ":")
	if ss := s.st.storage(store); ss != nil {
		ss.removeVolume(volid)
	}
}

func handleConfigPut(s *Server, c *call) (any, error) {
	if err := s.checkSkiplock(c); err != nil {
		return nil, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	v, err := s.vmOn(c.vars["node"], c.vmid())
	if err != nil {
		return nil, err
	}
	if err := s.checkConfigUpdate(c, v); err != nil {
		return nil, err
	}
	tc := &taskCtx{s: s, t: &task{}}
	if err := s.applyConfig(tc, c, v); err != nil {
		return nil, errDie("%v", err)
	}
	return nil, nil
}

func handleConfigPost(s *Server, c *call) (any, error) {
	if err := s.checkSkiplock(c); err != nil {
		return nil, err
	}
	s.mu.Lock()
	v, err := s.vmOn(c.vars["node"], c.vmid())
	if err == nil {
		err = s.checkConfigUpdate(c, v)
	}
	s.mu.Unlock()
	if err != nil {
		return nil, err
	}
	return s.startTask(v.node, "qmconfig", itoa(v.vmid), c.id, func(tc *taskCtx) error {
		if !tc.sleep(durConfig) {
			return errInterrupted
		}
		s.mu.Lock()
		defer s.mu.Unlock()
		if s.st.vms[v.vmid] != v {
			return errNoConfig(v.node, v.vmid)
		}
		if err := checkDigest(c, v); err != nil {
			return err
		}
		if l := v.conf["lock"]; l != "" && c.p.get("skiplock") != "1" {
			return lockErr(l)
		}
		var lines []string
		tc2 := &taskCtx{s: s, t: &task{}}
		err := s.applyConfig(tc2, c, v)
		lines = tc2.t.lines
		tc.t.lines = append(tc.t.lines, lines...)
		return err
	}), nil
}

// --- resize ---

func handleResize(s *Server, c *call) (any, error) {
	if err := s.checkSkiplock(c); err != nil {
		return nil, err
	}
	disk, size := c.p.get("disk"), c.p.get("size")
	if !reDiskKey.MatchString(disk) {
		return nil, errParam("disk", fmt.Sprintf("value '%s' does not have a value in the enumeration", disk))
	}
	s.mu.Lock()
	v, err := s.vmOn(c.vars["node"], c.vmid())
	if err == nil {
		if l := v.conf["lock"]; l != "" && c.p.get("skiplock") != "1" {
			err = errDie("VM is locked (%s)", l)
		}
	}
	s.mu.Unlock()
	if err != nil {
		return nil, err
	}
	return s.startTask(v.node, "resize", itoa(v.vmid), c.id, func(tc *taskCtx) error {
		s.mu.Lock()
		val, ok := v.conf[disk]
		s.mu.Unlock()
		if !ok {
			return fmt.Errorf("disk '%s' does not exist", disk)
		}
		d := parseDrive(val)
		if d.isCDROM() {
			return fmt.Errorf("you can't resize a cdrom")
		}
		cur, _ := parseSize(d.opts["size"])
		var want uint64
		if strings.HasPrefix(size, "+") {
			add, _ := parseSize(strings.TrimPrefix(size, "+"))
			want = cur + add
		} else {
			want, _ = parseSize(size)
		}
		if want < cur {
			return fmt.Errorf("shrinking disks is not supported")
		}
		if !tc.sleep(durResize) {
			return errInterrupted
		}
		_, short, _ := strings.Cut(d.file, ":")
		tc.logf("  Size of logical volume pve/%s changed from %s to %s.", short, humanSize(cur), humanSize(want))
		tc.logf("  Logical volume pve/%s successfully resized.", short)
		s.mu.Lock()
		defer s.mu.Unlock()
		d.opts["size"] = formatSize(want)
		v.conf[disk] = d.String()
		store, _, _ := strings.Cut(d.file, ":")
		if ss := s.st.storage(store); ss != nil {
			if vol := ss.volume(d.file); vol != nil {
				vol.Size = want
			}
		}
		return nil
	}), nil
}

// --- power ---

// taskVM finds the VM inside a worker (config missing / lock are task errors for power actions).
func (s *Server) taskVM(node string, vmid int, skiplock bool) (*vmState, error) {
	v := s.st.vms[vmid]
	if v == nil || v.node != node {
		return nil, fmt.Errorf("Configuration file '%s' does not exist", confPath(node, vmid))
	}
	if l := v.conf["lock"]; l != "" && !skiplock {
		return nil, lockErr(l)
	}
	return v, nil
}

func handleStart(s *Server, c *call) (any, error) {
	if err := s.checkSkiplock(c); err != nil {
		return nil, err
	}
	node, vmid := c.vars["node"], c.vmid()
	skip := c.p.get("skiplock") == "1"
	return s.startTask(node, "qmstart", itoa(vmid), c.id, func(tc *taskCtx) error {
		s.mu.Lock()
		v, err := s.taskVM(node, vmid, skip)
		s.mu.Unlock()
		if err != nil {
			return err
		}
		return s.startWorker(tc, v, skip)
	}), nil
}

// startWorker is vm_start: checks, PCI reservation, QEMU start, guest power-on.
func (s *Server) startWorker(tc *taskCtx, v *vmState, skiplock bool) error {
	s.mu.Lock()
	if v.running {
		s.mu.Unlock()
		return fmt.Errorf("VM %d already running", v.vmid)
	}
	if v.pid < 0 {
		s.mu.Unlock()
		return fmt.Errorf("can't lock file '/var/lock/qemu-server/lock-%d.conf' - got timeout", v.vmid)
	}
	if v.conf["template"] == "1" {
		s.mu.Unlock()
		return fmt.Errorf("you can't start a vm if it's a template")
	}
	var notes []string
	pcis, err := s.resolveHostpci(v, true, &notes)
	if err != nil {
		s.mu.Unlock()
		return err
	}
	// written to the task log like Perl's warn (plain lines, the task still ends OK)
	tc.t.lines = append(tc.t.lines, notes...)
	boot, err := s.bootInfo(v, pcis)
	if err != nil {
		s.releasePCI(v)
		s.mu.Unlock()
		return err
	}
	if err := s.startFaults(tc, v, pcis); err != nil {
		s.releasePCI(v)
		s.mu.Unlock()
		return err
	}
	v.pid = -1 // starting
	d := durStart + time.Duration(memoryMiB(v.conf)/1024)*50*time.Millisecond
	hasCI := false
	for k, val := range v.conf {
		if reDiskKey.MatchString(k) && strings.Contains(parseDrive(val).file, "cloudinit") {
			hasCI = true
		}
	}
	s.mu.Unlock()
	if hasCI {
		tc.logf("generating cloud-init ISO")
	}
	if !tc.sleep(d) {
		s.mu.Lock()
		v.pid = 0
		s.releasePCI(v)
		s.mu.Unlock()
		return errInterrupted
	}
	s.mu.Lock()
	if s.st.vms[v.vmid] != v {
		s.mu.Unlock()
		return fmt.Errorf("Configuration file '%s' does not exist", confPath(v.node, v.vmid))
	}
	s.pidNext += 13
	v.running, v.pid, v.started = true, s.pidNext, time.Now()
	s.markReservationsRunning(v)
	g := v.guest
	s.mu.Unlock()
	if g != nil {
		if err := g.PowerOn(context.Background(), boot); err != nil {
			s.mu.Lock()
			v.running, v.pid = false, 0
			s.releasePCI(v)
			s.mu.Unlock()
			return fmt.Errorf("start failed: QEMU exited with code 1")
		}
	}
	return nil
}

// bootInfo derives what the guest sees at power-on; called with s.mu held.
func (s *Server) bootInfo(v *vmState, pcis []resolvedPCI) (BootInfo, error) {
	conf := map[string]string{}
	for k, x := range v.conf {
		conf[k] = x
	}
	b := BootInfo{
		Name: vmName(v), Machine: conf["machine"], BIOS: conf["bios"], CPU: conf["cpu"],
		Cores: vcpus(conf), MemoryMiB: memoryMiB(conf), Config: conf,
	}
	if b.BIOS == "" {
		b.BIOS = "seabios"
	}
	if b.CPU == "" {
		b.CPU = "x86-64-v2-AES"
	}
	if b.Machine == "" {
		b.Machine = "pc"
	}
	for _, r := range pcis {
		b.GPUs = append(b.GPUs, r.devs...)
	}
	hasCI := false
	for k, val := range conf {
		if reDiskKey.MatchString(k) && strings.Contains(parseDrive(val).file, "cloudinit") {
			hasCI = true
		}
	}
	if !hasCI {
		return b, nil
	}
	ci := CloudInitData{Hostname: vmName(v), User: conf["ciuser"], SSHKeys: decodeSSHKeys(conf["sshkeys"]),
		IPConfig0: conf["ipconfig0"], Nameserver: conf["nameserver"]}
	if ci.User == "" {
		ci.User = "ubuntu"
	}
	if cc := conf["cicustom"]; cc != "" {
		kv, _ := parsePropString(cc, "")
		for _, part := range []string{"user", "network", "meta", "vendor"} {
			vol, ok := kv[part]
			if !ok {
				continue
			}
			content, found := s.snippetLocked(vol)
			if !found {
				return b, fmt.Errorf("volume '%s' does not exist", vol)
			}
			if part == "vendor" {
				ci.VendorData = content
			}
		}
	}
	b.CloudInit = ci
	return b, nil
}

func handleStop(s *Server, c *call) (any, error) {
	if err := s.checkSkiplock(c); err != nil {
		return nil, err
	}
	node, vmid := c.vars["node"], c.vmid()
	skip := c.p.get("skiplock") == "1"
	return s.startTask(node, "qmstop", itoa(vmid), c.id, func(tc *taskCtx) error {
		return s.powerOff(tc, node, vmid, skip, false, durStop)
	}), nil
}

func handleShutdown(s *Server, c *call) (any, error) {
	if err := s.checkSkiplock(c); err != nil {
		return nil, err
	}
	node, vmid := c.vars["node"], c.vmid()
	skip := c.p.get("skiplock") == "1"
	return s.startTask(node, "qmshutdown", itoa(vmid), c.id, func(tc *taskCtx) error {
		return s.powerOff(tc, node, vmid, skip, true, durShutdown)
	}), nil
}

func (s *Server) powerOff(tc *taskCtx, node string, vmid int, skip, clean bool, d time.Duration) error {
	s.mu.Lock()
	v, err := s.taskVM(node, vmid, skip)
	if err != nil {
		s.mu.Unlock()
		return err
	}
	if !v.running {
		s.mu.Unlock()
		if clean {
			return fmt.Errorf("VM %d not running", vmid)
		}
		return nil
	}
	s.mu.Unlock()
	if !tc.sleep(d) {
		return errInterrupted
	}
	s.mu.Lock()
	v.running, v.pid = false, 0
	s.releasePCI(v)
	g := v.guest
	s.mu.Unlock()
	if g != nil {
		_ = g.PowerOff(clean)
	}
	return nil
}

func handleReboot(s *Server, c *call) (any, error) {
	return s.restartTask(c, "qmreboot", durReboot)
}

func handleReset(s *Server, c *call) (any, error) {
	if err := s.checkSkiplock(c); err != nil {
		return nil, err
	}
	return s.restartTask(c, "qmreset", durStop)
}

func (s *Server) restartTask(c *call, typ string, d time.Duration) (any, error) {
	node, vmid := c.vars["node"], c.vmid()
	skip := c.p.get("skiplock") == "1"
	return s.startTask(node, typ, itoa(vmid), c.id, func(tc *taskCtx) error {
		s.mu.Lock()
		v, err := s.taskVM(node, vmid, skip)
		if err == nil && !v.running {
			err = fmt.Errorf("VM %d not running", vmid)
		}
		s.mu.Unlock()
		if err != nil {
			return err
		}
		if !tc.sleep(d) {
			return errInterrupted
		}
		s.mu.Lock()
		s.pidNext += 11
		v.pid, v.started = s.pidNext, time.Now()
		g := v.guest
		s.mu.Unlock()
		if g != nil {
			return g.Reboot()
		}
		return nil
	}), nil
}

// --- destroy ---

func handleDestroy(s *Server, c *call) (any, error) {
	if err := s.checkSkiplock(c); err != nil {
		return nil, err
	}
	node, vmid := c.vars["node"], c.vmid()
	skip := c.p.get("skiplock") == "1"
	s.mu.Lock()
	v, err := s.vmOn(node, vmid)
	if err == nil && v.running {
		err = errDie("VM %d is running - destroy failed", vmid)
	}
	if err == nil && v.conf["protection"] == "1" {
		err = errDie("can't remove VM %d - protection mode enabled", vmid)
	}
	s.mu.Unlock()
	if err != nil {
		return nil, err
	}
	purge := c.p.get("purge") == "1"
	return s.startTask(node, "qmdestroy", itoa(vmid), c.id, func(tc *taskCtx) error {
		s.mu.Lock()
		v, err := s.taskVM(node, vmid, skip)
		if err == nil && v.running {
			err = fmt.Errorf("VM %d is running - destroy failed", vmid)
		}
		s.mu.Unlock()
		if err != nil {
			return err
		}
		if !tc.sleep(durDestroy) {
			return errInterrupted
		}
		s.mu.Lock()
		for _, volid := range s.freeVolumes(v) {
			_, short, _ := strings.Cut(volid, ":")
			tc.t.lines = append(tc.t.lines, fmt.Sprintf("  Logical volume \"%s\" successfully removed.", short))
		}
		if purge {
			tc.t.lines = append(tc.t.lines, fmt.Sprintf("purging VM %d from related configurations..", vmid))
		}
		s.releasePCI(v)
		delete(s.st.vms, vmid)
		g := v.guest
		s.mu.Unlock()
		if g != nil {
			_ = g.Destroy()
		}
		return nil
	}), nil
}

// startInitialVMs powers on the topology's running VMs (guests included).
func (s *Server) startInitialVMs() {
	s.mu.Lock()
	var vms []*vmState
	for _, v := range s.st.vmsSorted() {
		vms = append(vms, v)
	}
	s.mu.Unlock()
	for _, v := range vms {
		s.newGuest(v)
		s.mu.Lock()
		if !v.running {
			s.mu.Unlock()
			continue
		}
		s.pidNext += 17
		v.pid, v.started = s.pidNext, time.Now()
		pcis, _ := s.resolveHostpci(v, true, nil)
		s.markReservationsRunning(v)
		boot, _ := s.bootInfo(v, pcis)
		g := v.guest
		s.mu.Unlock()
		if g != nil {
			go func() { _ = g.PowerOn(context.Background(), boot) }()
		}
	}
}

// VMSnapshot is one VM in GET /_sim/state.
type VMSnapshot struct {
	Node        string            `json:"node"`
	VMID        int               `json:"vmid"`
	Status      string            `json:"status"`
	Config      map[string]string `json:"config"`
	Incarnation string            `json:"incarnation,omitempty"`
}

// Snapshot is the simulated cluster state (VMs, PCI reservations).
type Snapshot struct {
	VMs          []VMSnapshot      `json:"vms"`
	Reservations map[string]int    `json:"pci_reservations"`
	IOMMU        map[string]bool   `json:"iommu"`
	Mappings     map[string]string `json:"mappings"`
}

// Snapshot returns the state (for tests and GET /_sim/state).
func (s *Server) Snapshot() Snapshot {
	s.mu.Lock()
	defer s.mu.Unlock()
	snap := Snapshot{Reservations: map[string]int{}, IOMMU: map[string]bool{}, Mappings: map[string]string{}}
	for _, v := range s.st.vmsSorted() {
		conf := map[string]string{}
		for k, x := range v.conf {
			conf[k] = x
		}
		st := "stopped"
		if v.running {
			st = "running"
		}
		snap.VMs = append(snap.VMs, VMSnapshot{Node: v.node, VMID: v.vmid, Status: st, Config: conf, Incarnation: v.incarnation})
	}
	for k, r := range s.st.reservations {
		snap.Reservations[k] = r.vmid
	}
	for _, n := range s.st.nodes {
		snap.IOMMU[n.spec.Name] = n.iommu
	}
	for _, m := range s.st.mappings {
		snap.Mappings[m.id] = strings.Join(m.maps, " ")
	}
	return snap
}

// startFaults are vm_start's failures after the PCI reservation, in PVE's order: binding the
// devices to vfio-pci, then QEMU itself (memory it cannot allocate, a kvm that does not come up in
// time). Called with s.mu held; log lines go straight into the task log.
func (s *Server) startFaults(tc *taskCtx, v *vmState, pcis []resolvedPCI) error {
	for _, r := range pcis {
		for _, d := range r.devs {
			if s.faults.pciFaults[v.node+" "+d.ID] == PCIFaultVFIOBind {
				return fmt.Errorf("can't unbind/bind PCI group to VFIO '%s'", d.ID)
			}
		}
	}
	if n := s.st.node(v.node); n != nil {
		used := uint64(4 << 30) // host overhead, as in nodeUsage
		for _, o := range s.st.vms {
			if o != v && o.node == v.node && o.running {
				used += uint64(memoryMiB(o.conf)) << 20
			}
		}
		total := uint64(n.spec.MemoryGiB) << 30
		if need := uint64(memoryMiB(v.conf)) << 20; used >= total || need > total-used {
			tc.t.lines = append(tc.t.lines, "kvm: cannot set up guest memory 'pc.ram': Cannot allocate memory")
			return fmt.Errorf("start failed: QEMU exited with code 1")
		}
	}
	if s.faults.vmFaults[v.vmid] == VMFaultKVMTimeout {
		delete(s.faults.vmFaults, v.vmid)
		return fmt.Errorf("start failed: command '%s' failed: got timeout", kvmCommand(v))
	}
	return nil
}

// kvmCommand is the head of the command line qemu-server runs for a VM (enough to recognise it).
func kvmCommand(v *vmState) string {
	name := v.conf["name"]
	if name == "" {
		name = fmt.Sprintf("VM %d", v.vmid)
	}
	return fmt.Sprintf("/usr/bin/kvm -id %d -name '%s,debug-threads=on' -no-shutdown -chardev 'socket,id=qmp,path=/var/run/qemu-server/%d.qmp,server=on,wait=off' -mon 'chardev=qmp,mode=control' -pidfile /var/run/qemu-server/%d.pid -daemonize -smp '%d,sockets=1,cores=%d,maxcpus=%d' -m %d",
		v.vmid, name, v.vmid, v.vmid, vcpus(v.conf), vcpus(v.conf), vcpus(v.conf), memoryMiB(v.conf))
}
