package guest

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"time"

	"gopkg.in/yaml.v3"
)

// cloudInit is the state of cloud-init for the current boot.
type cloudInit struct {
	status     string // not started | running | done | error
	degraded   bool
	done       chan struct{}
	finalRan   bool // modules:final completed once for this instance
	lastUpdate time.Time
	errors     []string
	dpkgBusy   int
}

// cloudInitEarly is the init stage: hostname, default user, SSH keys, netplan, host keys.
func (s *system) cloudInitEarly(first bool) {
	s.mu.Lock()
	s.ci.status = "running"
	s.ci.degraded = false
	s.ci.errors = nil
	s.ci.done = make(chan struct{})
	s.mu.Unlock()
	b := s.g.bootInfo()
	ci := b.CloudInit
	if first {
		host := s.g.hostname()
		s.g.fs.writeFile("/etc/hostname", []byte(host+"\n"), 0o644, owner{})
		s.g.fs.appendFile("/etc/hosts", []byte("127.0.1.1 "+host+"\n"))
		name := ci.User
		if name == "" {
			name = "ubuntu"
		}
		u, err := s.g.fs.lookupUser(name)
		if err != nil {
			u, _ = s.g.fs.addUser(name, false, "/home/"+name, "/bin/bash", -1)
		}
		if u != nil {
			for _, grp := range []string{"adm", "cdrom", "sudo", "dip", "lxd"} {
				s.g.fs.addToGroup(name, grp)
			}
			s.g.fs.mkdirAll(u.Home+"/.ssh", 0o700, owner{u.UID, u.GID})
			chmodGuest(s.g.fs, u.Home, 0o750)
			s.g.fs.setOwner(u.Home, owner{u.UID, u.GID})
			keys := strings.Join(ci.SSHKeys, "\n")
			if keys != "" {
				keys += "\n"
			}
			s.g.fs.writeFile(u.Home+"/.ssh/authorized_keys", []byte(keys), 0o600, owner{u.UID, u.GID})
			s.g.fs.writeFile("/etc/sudoers.d/90-cloud-init-users", []byte("# Created by cloud-init v. 25.2-0ubuntu1~24.04.1 on "+time.Now().UTC().Format("Mon, 02 Jan 2006 15:04:05 -0700")+"\n\n# User rules for "+name+"\n"+name+" ALL=(ALL) NOPASSWD:ALL\n"), 0o440, owner{})
		}
		ip, pfx := parseIPConfig(ci.IPConfig0, s.g.id.VMID)
		netplan := fmt.Sprintf("network:\n  version: 2\n  ethernets:\n    eth0:\n      match:\n        macaddress: \"%s\"\n      addresses:\n      - \"%s/%d\"\n      nameservers:\n        addresses:\n        - %s\n      set-name: \"eth0\"\n      routes:\n      - to: \"default\"\n        via: \"%s\"\n", s.g.mac, ip, pfx, orDefault(ci.Nameserver, gateway(ip)), gateway(ip))
		s.g.fs.writeFile("/etc/netplan/50-cloud-init.yaml", []byte(netplan), 0o600, owner{})
		s.g.fs.writeFile("/var/lib/cloud/instance/vendor-data.txt", []byte(ci.VendorData), 0o600, owner{})
	}
	s.g.ensureHostKeys()
}

func orDefault(s, d string) string {
	if s == "" {
		return d
	}
	return s
}

type vendorData struct {
	PackageUpdate  *bool `yaml:"package_update"`
	PackageUpgrade bool  `yaml:"package_upgrade"`
	Packages       []any `yaml:"packages"`
	Runcmd         []any `yaml:"runcmd"`
	WriteFiles     []struct {
		Path        string `yaml:"path"`
		Content     string `yaml:"content"`
		Permissions string `yaml:"permissions"`
	} `yaml:"write_files"`
}

// cloudInitFinal is modules:final: vendor-data packages and runcmd, then the finished marker.
func (s *system) cloudInitFinal(ctx context.Context, first bool) {
	s.mu.Lock()
	ran := s.ci.finalRan
	s.mu.Unlock()
	var errs []string
	crash := false
	if !ran {
		if err := s.g.sleep(ctx, cloudFinalFor); err != nil {
			return
		}
		vd := s.g.bootInfo().CloudInit.VendorData
		if strings.TrimSpace(vd) != "" {
			var v vendorData
			if err := yaml.Unmarshal([]byte(vd), &v); err != nil || !strings.HasPrefix(strings.TrimSpace(vd), "#cloud-config") {
				errs = append(errs, "Unhandled non-multipart (text/x-not-multipart) userdata: 'b'"+firstLine(vd)+"'...'")
			} else {
				errs = append(errs, s.applyVendorData(ctx, v)...)
				if ctx.Err() != nil {
					return
				}
			}
		}
		if ft := s.g.f.fault(FaultCloudInitDegraded, s.g.id.VMID, nil); ft != nil {
			errs = append(errs, "Failed to run module scripts_user (scripts in /var/lib/cloud/instance/scripts)")
		}
		if ft := s.g.f.fault(FaultCloudInitCrash, s.g.id.VMID, nil); ft != nil {
			crash = true
		}
		// unattended-upgrades starts its first run right after cloud-init on first boot
		s.mu.Lock()
		s.lockUntil = time.Now().Add(s.g.scale(unattendedFor))
		s.lockPID = 1187
		s.mu.Unlock()
	}
	s.mu.Lock()
	s.ci.finalRan = true
	s.ci.lastUpdate = time.Now()
	s.ci.errors = errs
	switch {
	case crash:
		s.ci.status = "error"
	default:
		s.ci.status = "done"
		s.ci.degraded = len(errs) > 0
	}
	done := s.ci.done
	s.mu.Unlock()
	s.g.fs.writeFile("/var/lib/cloud/instance/boot-finished", []byte(fmt.Sprintf("%.2f - %s - v. 25.2-0ubuntu1~24.04.1\n", s.uptime(), time.Now().UTC().Format("Mon, 02 Jan 2006 15:04:05 +0000"))), 0o644, owner{})
	close(done)
}

func firstLine(s string) string {
	l, _, _ := strings.Cut(strings.TrimSpace(s), "\n")
	return l
}

func (s *system) applyVendorData(ctx context.Context, v vendorData) []string {
	var errs []string
	root, _ := s.g.fs.lookupUser("root")
	var out strings.Builder
	p := &proc{g: s.g, ctx: ctx, user: root, env: rootEnv(), dir: "/", stdin: strings.NewReader(""), stdout: &out, stderr: &out}
	for _, wf := range v.WriteFiles {
		s.g.fs.writeFile(wf.Path, []byte(wf.Content), 0o644, owner{})
	}
	var pkgs []string
	for _, x := range v.Packages {
		if s, ok := x.(string); ok {
			pkgs = append(pkgs, s)
		}
	}
	if len(pkgs) > 0 || v.PackageUpdate != nil && *v.PackageUpdate {
		q := *p
		q.name, q.args = "apt-get", []string{"apt-get", "update"}
		if code := progAptGet(&q); code != 0 {
			errs = append(errs, "Failed to update package using apt")
		}
		if len(pkgs) > 0 {
			q.args = append([]string{"apt-get", "--option=Dpkg::Options::=--force-confold", "--option=Dpkg::options::=--force-unsafe-io", "--assume-yes", "--quiet", "install"}, pkgs...)
			if code := progAptGet(&q); code != 0 {
				errs = append(errs, "Failed to install packages: "+strings.Join(pkgs, ", "))
			}
		}
	}
	s.logUnit("cloud-final.service", "%s", out.String())
	for _, c := range v.Runcmd {
		var script string
		switch x := c.(type) {
		case string:
			script = x
		case []any:
			var parts []string
			for _, a := range x {
				parts = append(parts, "'"+strings.ReplaceAll(fmt.Sprint(a), "'", `'\''`)+"'")
			}
			script = strings.Join(parts, " ")
		}
		var o strings.Builder
		code := s.g.runShell(ctx, shellSpec{user: root, env: rootEnv(), dir: "/", script: script, stdin: strings.NewReader(""), stdout: &o, stderr: &o})
		s.logUnit("cloud-final.service", "%s", o.String())
		if code != 0 {
			errs = append(errs, "Failed to run module scripts_user (scripts in /var/lib/cloud/instance/scripts)")
		}
	}
	return errs
}

// agentPortPresent reports whether the VM has the virtio-serial port of the guest agent (agent: 1).
func (s *system) agentPortPresent() bool {
	a := s.g.bootInfo().Config["agent"]
	return a == "1" || strings.HasPrefix(a, "1,") || strings.Contains(a, "enabled=1")
}

// agentRunning: qemu-guest-agent installed, its service active, the port present, not faulted.
func (s *system) agentRunning() bool {
	if s.g.State() != PowerRunning || !s.agentPortPresent() {
		return false
	}
	if s.g.f.hasFault(FaultAgentNeverStarts, s.g.id.VMID) != nil {
		return false
	}
	sv := s.service("qemu-guest-agent.service")
	if sv == nil {
		return false
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	return sv.state == "active"
}

func init() {
	programs["cloud-init"] = progCloudInit
	daemons["systemd-socket-proxyd"] = func(ctx context.Context, s *system, sv *service, argv []string, env map[string]string, u *user) int {
		<-ctx.Done()
		return 0
	}
	daemons["qemu-ga"] = func(ctx context.Context, s *system, sv *service, argv []string, env map[string]string, u *user) int {
		<-ctx.Done()
		return 0
	}
}

func progCloudInit(p *proc) int {
	s := p.g.sys
	args := p.args[1:]
	if len(args) == 0 {
		p.errorf("usage: cloud-init [-h] [--version] [--debug] [--force] [--all-stages] {init,modules,single,query,features,analyze,devel,collect-logs,clean,status,schema} ...\n")
		return 2
	}
	if args[0] == "--version" {
		p.printf("/usr/bin/cloud-init 25.2-0ubuntu1~24.04.1\n")
		return 0
	}
	if args[0] != "status" {
		return 0
	}
	wait, long, js := false, false, false
	for i, a := range args[1:] {
		switch a {
		case "--wait", "-w":
			wait = true
		case "--long", "-l":
			long = true
		case "--format":
			if i+2 < len(args) && args[i+2] == "json" {
				js = true
			}
		case "--format=json":
			js = true
		}
	}
	s.mu.Lock()
	done := s.ci.done
	s.mu.Unlock()
	if wait && done != nil {
		tick := time.NewTicker(250 * time.Millisecond)
		defer tick.Stop()
	loop:
		for {
			select {
			case <-done:
				break loop
			case <-p.ctx.Done():
				return 143
			case <-tick.C:
				p.printf(".")
			}
		}
	}
	s.mu.Lock()
	st := s.ci
	s.mu.Unlock()
	status := st.status
	if status == "" {
		status = "not started"
	}
	ext := status
	if status == "done" && st.degraded {
		ext = "degraded done"
	}
	code := 0
	switch {
	case status == "error":
		code = 1
	case st.degraded:
		code = 2
	}
	if js {
		errs := st.errors
		if errs == nil {
			errs = []string{}
		}
		b, _ := json.MarshalIndent(map[string]any{"status": status, "extended_status": ext, "boot_status_code": "enabled-by-generator",
			"datasource": "nocloud", "detail": "DataSourceNoCloud [seed=/dev/sr0]", "errors": errs, "recoverable_errors": map[string]any{},
			"last_update": st.lastUpdate.UTC().Format("Mon, 02 Jan 2006 15:04:05 +0000")}, "", "  ")
		p.printf("%s\n", b)
		return code
	}
	p.printf("status: %s\n", status)
	if long {
		p.printf("extended_status: %s\nboot_status_code: enabled-by-generator\nlast_update: %s\ndetail: DataSourceNoCloud [seed=/dev/sr0]\n", ext, st.lastUpdate.UTC().Format("Mon, 02 Jan 2006 15:04:05 +0000"))
		if len(st.errors) == 0 {
			p.printf("errors: []\nrecoverable_errors: {}\n")
		} else {
			p.printf("errors: []\nrecoverable_errors:\nWARNING:\n")
			for _, e := range st.errors {
				p.printf("\t- %s\n", e)
			}
		}
	}
	return code
}
