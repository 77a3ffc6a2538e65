package guest

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"path"
	"sort"
	"strconv"
	"strings"
	"time"
)

// unit is a parsed service unit (file + drop-ins).
type unit struct {
	name       string
	path       string
	dropIns    []string
	exec       []string // ExecStart= argv, words unquoted and specifiers resolved (execLine)
	execRaw    bool     // ExecStart=:… — no environment substitution
	bad        string   // why the unit has a bad setting (systemd refuses to start it)
	user       string
	group      string
	workingDir string
	env        []string // KEY=VALUE in order
	envFiles   []string // "-/etc/x" optional
	restart    string
	restartSec time.Duration
	wantedBy   []string
	hasInstall bool
	desc       string
	bindsTo    string
	listen     string // [Socket] ListenStream=
	source     string // concatenated sources, to detect changes on disk
}

// service is a unit's runtime state.
type service struct {
	u        *unit
	state    string // active | activating | inactive | failed | deactivating
	sub      string // running | dead | failed | auto-restart
	pid      int
	since    time.Time
	cancel   context.CancelFunc
	exe      string
	cmdline  string
	result   string
	status   int
	restarts int
	gen      int
	lnAddr   string // socket units: where it listens
	lnPort   int
	// done is closed when the main process (the program's goroutine) has returned, its
	// listeners and GPU memory released.
	done chan struct{}
}

var unitDirs = []string{"/etc/systemd/system", "/usr/lib/systemd/system"}

func unitName(n string) string {
	if !strings.Contains(n, ".") {
		return n + ".service"
	}
	return n
}

// readUnit parses a unit from disk; nil when no unit file exists.
func (s *system) readUnit(name string) *unit {
	var file string
	for _, d := range unitDirs {
		if s.g.fs.exists(d + "/" + name) {
			file = d + "/" + name
			break
		}
	}
	if file == "" {
		return nil
	}
	u := &unit{name: name, path: file, restart: "no", restartSec: 100 * time.Millisecond}
	srcs := []string{file}
	var dropins []string
	for _, d := range unitDirs {
		for _, f := range s.g.fs.glob(d+"/"+name+".d", "*.conf") {
			dropins = append(dropins, f)
		}
	}
	sort.Slice(dropins, func(i, j int) bool { return path.Base(dropins[i]) < path.Base(dropins[j]) })
	u.dropIns = dropins
	srcs = append(srcs, dropins...)
	var all strings.Builder
	for _, f := range srcs {
		content := s.g.fs.readString(f)
		all.WriteString(f + "\n" + content)
		section := ""
		for _, raw := range unitFileLines(content) {
			line := strings.Trim(raw, " \t\n\r")
			if line == "" || strings.HasPrefix(line, "#") || strings.HasPrefix(line, ";") {
				continue
			}
			if strings.HasPrefix(line, "[") {
				section = strings.Trim(line, "[]")
				if section == "Install" {
					u.hasInstall = true
				}
				continue
			}
			k, v, ok := strings.Cut(line, "=")
			if !ok {
				continue
			}
			k, v = strings.Trim(k, " \t\n\r"), strings.Trim(v, " \t\n\r")
			// printf resolves specifiers in a plain setting; systemd ignores the setting when
			// that fails (load-fragment.c config_parse_unit_string_printf and friends).
			printf := func() (string, bool) {
				r, err := s.specifiers(u, v)
				if err != nil {
					s.logUnit(u.name, "systemd[1]: %s: Failed to resolve unit specifiers in %s, ignoring: %v", f, v, err)
					return "", false
				}
				return r, true
			}
			switch section + "." + k {
			case "Unit.Description":
				if r, ok := printf(); ok {
					u.desc = r
				}
			case "Unit.BindsTo":
				u.bindsTo = v
			case "Service.ExecStart":
				if v == "" {
					u.exec, u.execRaw, u.bad = nil, false, ""
					continue
				}
				cmds, raw, err := s.execLine(u, v)
				switch {
				case err != nil:
					s.logUnit(u.name, "systemd[1]: %s: %v", f, err)
					u.bad = err.Error()
				case len(cmds) > 1 || len(u.exec) > 0:
					u.bad = "Service has more than one ExecStart= setting, which is only allowed for Type=oneshot services. Refusing."
					s.logUnit(u.name, "systemd[1]: %s: %s", u.name, u.bad)
				case len(cmds) == 1:
					u.exec, u.execRaw = cmds[0], raw[0]
				}
			case "Service.User":
				if r, ok := printf(); ok {
					u.user = r
				}
			case "Service.Group":
				if r, ok := printf(); ok {
					u.group = r
				}
			case "Service.WorkingDirectory":
				if r, ok := printf(); ok {
					u.workingDir = r
				}
			case "Service.Environment":
				if v == "" {
					u.env = nil
					continue
				}
				u.env = append(u.env, s.environmentWords(u, v)...)
			case "Service.EnvironmentFile":
				if v == "" {
					u.envFiles = nil
					continue
				}
				if r, ok := printf(); ok {
					u.envFiles = append(u.envFiles, r)
				}
			case "Service.Restart":
				u.restart = v
			case "Service.RestartSec":
				if d, err := parseSleep(v); err == nil {
					u.restartSec = d
				}
			case "Socket.ListenStream":
				if r, ok := printf(); ok {
					u.listen = r
				}
			case "Install.WantedBy":
				u.wantedBy = append(u.wantedBy, strings.Fields(v)...)
			}
		}
	}
	u.source = all.String()
	return u
}

// daemonReload re-reads every unit on disk.
func (s *system) daemonReload() {
	names := map[string]bool{}
	for _, d := range unitDirs {
		for _, pat := range []string{"*.service", "*.socket"} {
			for _, f := range s.g.fs.glob(d, pat) {
				names[path.Base(f)] = true
			}
		}
	}
	units := map[string]*unit{}
	for n := range names {
		if u := s.readUnit(n); u != nil {
			units[n] = u
		}
	}
	s.mu.Lock()
	s.units = units
	s.mu.Unlock()
}

// loadedUnit returns the unit as systemd knows it, loading it on first use; changed reports that
// the files on disk differ from the loaded configuration.
func (s *system) loadedUnit(name string) (u *unit, changed bool) {
	s.mu.Lock()
	u = s.units[name]
	s.mu.Unlock()
	disk := s.readUnit(name)
	if u == nil {
		if disk == nil {
			return nil, false
		}
		s.mu.Lock()
		s.units[name] = disk
		s.mu.Unlock()
		return disk, false
	}
	return u, disk == nil || disk.source != u.source
}

func (s *system) enabled(name string) string {
	u := s.readUnit(name)
	if u == nil {
		return ""
	}
	for _, d := range []string{"/etc/systemd/system"} {
		for _, w := range s.g.fs.glob(d, "*.wants") {
			if isSymlink(s.g.fs, w+"/"+name) || s.g.fs.exists(w+"/"+name) {
				return "enabled"
			}
		}
	}
	if !u.hasInstall || len(u.wantedBy) == 0 {
		return "static"
	}
	return "disabled"
}

func (s *system) startEnabled(ctx context.Context) {
	s.daemonReload()
	s.mu.Lock()
	var names []string
	for n := range s.units {
		names = append(names, n)
	}
	s.mu.Unlock()
	sort.Strings(names)
	for _, n := range names {
		if s.enabled(n) == "enabled" || n == "qemu-guest-agent.service" && s.isInstalled("qemu-guest-agent") {
			s.startUnitByName(ctx, n, nil)
		}
	}
}

func (s *system) runningServices() []*service {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []*service
	for _, sv := range s.services {
		if sv.state == "active" || sv.state == "activating" {
			out = append(out, sv)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].pid < out[j].pid })
	return out
}

func (s *system) service(name string) *service {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.services[name]
}

// startUnitByName starts a unit (no-op when active); warn receives the daemon-reload warning.
func (s *system) startUnitByName(ctx context.Context, name string, warn func(string)) bool {
	u, changed := s.loadedUnit(name)
	if u == nil {
		return false
	}
	if changed && warn != nil {
		warn(fmt.Sprintf("Warning: The unit file, source configuration file or drop-ins of %s changed on disk. Run 'systemctl daemon-reload' to reload units.", name))
	}
	if sv := s.service(name); sv != nil && (sv.state == "active" || sv.state == "activating") {
		return true
	}
	if strings.HasSuffix(name, ".socket") {
		s.startSocket(u)
		return true
	}
	s.g.mu.Lock()
	bctx := s.g.bootCtx
	s.g.mu.Unlock()
	if bctx == nil {
		bctx = ctx
	}
	s.spawn(bctx, u, 0)
	return true
}

// startSocket listens on ListenStream; connections go to the service of the same name, which
// for systemd-socket-proxyd forwards them to its target address.
func (s *system) startSocket(u *unit) {
	host, portStr, err := net.SplitHostPort(u.listen)
	if err != nil {
		host, portStr = "0.0.0.0", u.listen
	}
	port, err := strconv.Atoi(portStr)
	if err != nil {
		s.logUnit(u.name, "systemd[1]: %s: Failed to parse ListenStream= %q", u.name, u.listen)
		return
	}
	sv := &service{u: u, state: "active", sub: "listening", since: time.Now(), lnAddr: host, lnPort: port}
	s.mu.Lock()
	s.services[u.name] = sv
	s.mu.Unlock()
	svcName := strings.TrimSuffix(u.name, ".socket") + ".service"
	s.listen(host, port, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		su, _ := s.loadedUnit(svcName)
		if su == nil {
			panic(http.ErrAbortHandler)
		}
		if cur := s.service(svcName); cur == nil || cur.state != "active" {
			s.startUnitByName(r.Context(), svcName, nil)
		}
		argv := su.exec
		if len(argv) < 2 || path.Base(argv[0]) != "systemd-socket-proxyd" {
			panic(http.ErrAbortHandler)
		}
		th, tp, err := net.SplitHostPort(argv[1])
		tpn, _ := strconv.Atoi(tp)
		if err != nil {
			panic(http.ErrAbortHandler)
		}
		h := s.handlerFor(th, tpn)
		if h == nil {
			pid := 0
			if cur := s.service(svcName); cur != nil {
				pid = cur.pid
			}
			s.logUnit(svcName, "systemd-socket-proxyd[%d]: Failed to connect to remote host: Connection refused", pid)
			panic(http.ErrAbortHandler) // the proxy closes the accepted connection
		}
		h.ServeHTTP(w, r)
	}))
	s.logUnit(u.name, "systemd[1]: Listening on %s - %s.", u.name, u.desc)
}

// spawn starts the main process of a unit.
func (s *system) spawn(bctx context.Context, u *unit, restarts int) {
	ctx, cancel := context.WithCancel(bctx)
	pid := s.pid()
	sv := &service{u: u, state: "active", sub: "running", pid: pid, since: time.Now(), cancel: cancel, restarts: restarts}
	s.mu.Lock()
	if old := s.services[u.name]; old != nil {
		sv.gen = old.gen + 1
		sv.restarts = restarts
	}
	s.services[u.name] = sv
	s.mu.Unlock()
	desc := u.desc
	if desc == "" {
		desc = u.name
	}
	s.logUnit(u.name, "systemd[1]: Started %s - %s.", u.name, desc)
	if u.bad != "" || len(u.exec) == 0 {
		s.logUnit(u.name, "systemd[1]: %s: Unit configuration has fatal error, unit will not be started.", u.name)
		s.exited(sv, 1, "exit-code", "bad-setting")
		return
	}
	// The environment: the manager's, then Environment=, then EnvironmentFile= ("Settings
	// from these files override settings made with Environment=", systemd.exec(5)).
	env := map[string]string{"PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin:/snap/bin", "LANG": "C.UTF-8", "INVOCATION_ID": fmt.Sprintf("%032x", pid)}
	for _, kv := range u.env {
		k, v, _ := strings.Cut(kv, "=")
		env[k] = v
	}
	for _, f := range u.envFiles {
		optional := strings.HasPrefix(f, "-")
		f = strings.TrimPrefix(f, "-")
		data, err := s.g.fs.readFile(f)
		if err != nil {
			if optional {
				continue
			}
			s.logUnit(u.name, "systemd[1]: %s: Failed to load environment files: No such file or directory", u.name)
			s.exited(sv, 1, "resources", "resources")
			return
		}
		kvs, dropped := parseEnvFile(string(data))
		for _, k := range dropped {
			s.logUnit(u.name, "systemd[1]: %s: Ignoring invalid environment assignment '%s': %s", u.name, k, f)
		}
		for _, kv := range kvs {
			env[kv[0]] = kv[1]
		}
	}
	argv := append([]string(nil), u.exec...)
	if !u.execRaw {
		argv = append(argv[:1], replaceEnvArgv(argv[1:], env)...)
	}
	sv.exe, sv.cmdline = argv[0], strings.Join(argv, " ")
	user := u.user
	if user == "" {
		user = "root"
	}
	usr, err := s.g.fs.lookupUser(user)
	if err != nil {
		s.logUnit(u.name, "(%s)[%d]: %s: Failed to determine user credentials: No such process", path.Base(argv[0]), pid, u.name)
		s.logUnit(u.name, "(%s)[%d]: %s: Failed at step USER spawning %s: No such process", path.Base(argv[0]), pid, u.name, argv[0])
		s.exited(sv, 217, "exit-code", "217/USER")
		return
	}
	env["HOME"], env["USER"], env["LOGNAME"] = usr.Home, usr.Name, usr.Name
	prog, ok := s.resolveProgram(argv[0])
	if !ok {
		s.logUnit(u.name, "(%s)[%d]: %s: Unable to locate executable '%s': No such file or directory", path.Base(argv[0]), pid, u.name, argv[0])
		s.logUnit(u.name, "(%s)[%d]: %s: Failed at step EXEC spawning %s: No such file or directory", path.Base(argv[0]), pid, u.name, argv[0])
		s.exited(sv, 203, "exit-code", "203/EXEC")
		return
	}
	if u.bindsTo != "" && strings.Contains(u.bindsTo, "qemu.guest_agent") && !s.agentPortPresent() {
		s.logUnit(u.name, "systemd[1]: Dependency failed for %s - %s.", u.name, desc)
		s.mu.Lock()
		sv.state, sv.sub, sv.result = "inactive", "dead", "dependency"
		s.mu.Unlock()
		return
	}
	done := make(chan struct{})
	s.mu.Lock()
	sv.done = done
	s.mu.Unlock()
	go func() {
		defer close(done)
		code := prog(ctx, s, sv, argv, env, usr)
		if ctx.Err() != nil {
			return // stopped
		}
		s.exited(sv, code, "exit-code", fmt.Sprintf("%d/%s", code, exitName(code)))
	}()
}

func exitName(code int) string {
	switch code {
	case 0:
		return "SUCCESS"
	case 1:
		return "FAILURE"
	case 203:
		return "EXEC"
	}
	return strconv.Itoa(code)
}

// exited records the end of a main process and applies Restart=.
func (s *system) exited(sv *service, code int, how, status string) {
	u := sv.u
	s.mu.Lock()
	cur := s.services[u.name] == sv
	sv.status = code
	s.mu.Unlock()
	if !cur {
		return
	}
	if code == 0 {
		s.logUnit(u.name, "systemd[1]: %s: Deactivated successfully.", u.name)
	} else {
		s.logUnit(u.name, "systemd[1]: %s: Main process exited, code=exited, status=%s", u.name, status)
		s.logUnit(u.name, "systemd[1]: %s: Failed with result '%s'.", u.name, how)
	}
	restart := u.restart == "always" || (u.restart == "on-failure" || u.restart == "on-abnormal") && code != 0
	s.mu.Lock()
	if code == 0 && !restart {
		sv.state, sv.sub, sv.result = "inactive", "dead", "success"
	} else if restart {
		sv.state, sv.sub, sv.result = "activating", "auto-restart", how
	} else {
		sv.state, sv.sub, sv.result = "failed", "failed", how
	}
	sv.pid = 0
	s.mu.Unlock()
	if !restart {
		return
	}
	s.g.mu.Lock()
	bctx := s.g.bootCtx
	s.g.mu.Unlock()
	go func() {
		// at time scale 0 a crash loop would spin; keep a small real floor between restarts
		d := s.g.scale(u.restartSec)
		if d < 5*time.Millisecond {
			d = 5 * time.Millisecond
		}
		t := time.NewTimer(d)
		select {
		case <-bctx.Done():
			t.Stop()
			return
		case <-t.C:
		}
		s.mu.Lock()
		still := s.services[u.name] == sv && sv.sub == "auto-restart"
		s.mu.Unlock()
		if !still {
			return
		}
		s.logUnit(u.name, "systemd[1]: %s: Scheduled restart job, restart counter is at %d.", u.name, sv.restarts+1)
		s.spawn(bctx, u, sv.restarts+1)
	}()
}

func (s *system) stopService(sv *service, why string) {
	if sv.lnPort != 0 {
		s.unlisten(sv.lnAddr, sv.lnPort)
	}
	s.mu.Lock()
	active := sv.state == "active" || sv.state == "activating"
	sv.state, sv.sub, sv.pid = "inactive", "dead", 0
	cancel, done := sv.cancel, sv.done
	s.mu.Unlock()
	if cancel != nil {
		cancel()
	}
	// A stop job ends when the main process is gone (systemd.kill(5): SIGTERM, then SIGKILL
	// after TimeoutStopSec=, 90 s by default): only then does `systemctl stop` or the stop half
	// of `restart` return, so the old process's sockets are closed before a new one starts.
	if done != nil {
		select {
		case <-done:
		case <-time.After(90 * time.Second):
		}
	}
	if active && why != "shutdown" {
		s.logUnit(sv.u.name, "systemd[1]: Stopping %s - %s...", sv.u.name, sv.u.desc)
		s.logUnit(sv.u.name, "systemd[1]: %s: Deactivated successfully.", sv.u.name)
		s.logUnit(sv.u.name, "systemd[1]: Stopped %s - %s.", sv.u.name, sv.u.desc)
	}
}

// serviceProgram is the body of a daemon; it returns the exit status when the process ends.
type serviceProgram func(ctx context.Context, s *system, sv *service, argv []string, env map[string]string, u *user) int

var daemons = map[string]serviceProgram{}

// resolveProgram finds the daemon implementation behind an ExecStart path.
func (s *system) resolveProgram(exe string) (serviceProgram, bool) {
	if !strings.HasPrefix(exe, "/") {
		fp, ok := s.g.lookPath(exe, securePath)
		if !ok {
			return nil, false
		}
		exe = fp
	}
	b, err := s.g.fs.readFile(exe)
	if err != nil {
		return nil, false
	}
	fi, _ := s.g.fs.stat(exe, true)
	if fi == nil || fi.Mode().Perm()&0o111 == 0 {
		return nil, false
	}
	name := ""
	if strings.HasPrefix(string(b), simMagic) {
		name = strings.TrimSpace(strings.SplitN(string(b[len(simMagic):]), "\n", 2)[0])
	}
	if d := daemons[name]; d != nil {
		return d, true
	}
	return daemonGeneric, true
}

// daemonGeneric runs a command to completion when it is a simulated program, else sleeps.
func daemonGeneric(ctx context.Context, s *system, sv *service, argv []string, env map[string]string, u *user) int {
	b, _ := s.g.fs.readFile(argv[0])
	if strings.HasPrefix(string(b), "#!") || programs[path.Base(argv[0])] != nil && path.Base(argv[0]) != "sleep" {
		w := &journalWriter{s: s, unit: sv.u.name, prefix: fmt.Sprintf("%s[%d]: ", path.Base(argv[0]), sv.pid)}
		p := &proc{g: s.g, ctx: ctx, user: u, args: argv, env: env, dir: "/", stdin: strings.NewReader(""), stdout: w, stderr: w}
		return s.g.execArgs(p, argv)
	}
	<-ctx.Done()
	return 0
}

type journalWriter struct {
	s      *system
	unit   string
	prefix string
	buf    []byte
}

func (w *journalWriter) Write(b []byte) (int, error) {
	w.buf = append(w.buf, b...)
	for {
		i := strings.IndexByte(string(w.buf), '\n')
		if i < 0 {
			break
		}
		w.s.logUnit(w.unit, "%s%s", w.prefix, string(w.buf[:i]))
		w.buf = w.buf[i+1:]
	}
	return len(b), nil
}

func init() {
	programs["systemctl"] = progSystemctl
	programs["journalctl"] = progJournalctl
	programs["reboot"] = progReboot
	programs["poweroff"] = progReboot
	programs["halt"] = progReboot
	programs["shutdown"] = progReboot
}

func progSystemctl(p *proc) int {
	s := p.g.sys
	args := p.args[1:]
	var cmd string
	var units []string
	var props []string
	value, now, quiet := false, false, false
	for i := 0; i < len(args); i++ {
		a := args[i]
		switch {
		case a == "-p" || a == "--property":
			if i+1 < len(args) {
				props = append(props, strings.Split(args[i+1], ",")...)
				i++
			}
		case strings.HasPrefix(a, "--property="):
			props = append(props, strings.Split(strings.TrimPrefix(a, "--property="), ",")...)
		case strings.HasPrefix(a, "-p") && len(a) > 2:
			props = append(props, strings.Split(a[2:], ",")...)
		case a == "--value":
			value = true
		case a == "--now":
			now = true
		case a == "-q" || a == "--quiet":
			quiet = true
		case strings.HasPrefix(a, "-"):
		case cmd == "":
			cmd = a
		default:
			units = append(units, unitName(a))
		}
	}
	mutating := map[string]bool{"start": true, "stop": true, "restart": true, "reload": true, "enable": true, "disable": true,
		"daemon-reload": true, "try-restart": true, "reload-or-restart": true, "reset-failed": true, "mask": true, "unmask": true, "edit": true, "kill": true}
	if mutating[cmd] && !p.root() {
		switch cmd {
		case "daemon-reload":
			p.errorf("Failed to reload daemon: Access denied\n")
		case "enable", "disable":
			p.errorf("Failed to %s unit: Access denied\n", cmd)
		default:
			p.errorf("Failed to %s %s: Interactive authentication required.\nSee system logs and 'systemctl status %s' for details.\n", cmd, strings.Join(units, " "), strings.Join(units, " "))
		}
		return 1
	}
	warn := func(w string) { p.errorf("%s\n", w) }
	switch cmd {
	case "daemon-reload":
		s.daemonReload()
		return 0
	case "start", "restart", "try-restart", "reload-or-restart", "reload":
		code := 0
		for _, n := range units {
			u, _ := s.loadedUnit(n)
			if u == nil {
				p.errorf("Failed to %s %s: Unit %s not found.\n", cmd, n, n)
				code = 5
				continue
			}
			sv := s.service(n)
			if cmd == "try-restart" && (sv == nil || sv.state != "active") {
				continue
			}
			if u.bad != "" {
				// systemctl's answer to a unit that failed to load (LoadState=bad-setting).
				p.errorf("Failed to %s %s: Unit %s has a bad unit file setting.\nSee system logs and 'systemctl status %s' for details.\n", cmd, n, n, n)
				code = 1
				continue
			}
			if cmd != "start" && sv != nil {
				s.stopService(sv, cmd)
			}
			s.startUnitByName(p.ctx, n, warn)
		}
		return code
	case "stop":
		for _, n := range units {
			if u, _ := s.loadedUnit(n); u == nil {
				p.errorf("Failed to stop %s: Unit %s not loaded.\n", n, n)
				return 5
			}
			if sv := s.service(n); sv != nil {
				s.stopService(sv, "stop")
			}
		}
		return 0
	case "enable", "disable":
		code := 0
		for _, n := range units {
			u := s.readUnit(n)
			if u == nil {
				p.errorf("Failed to %s unit: Unit file %s does not exist.\n", cmd, n)
				code = 1
				continue
			}
			if cmd == "enable" {
				if !u.hasInstall || len(u.wantedBy) == 0 {
					p.errorf("The unit files have no installation config (WantedBy=, RequiredBy=, UpheldBy=,\nAlso=, or Alias= settings in the [Install] section, and DefaultInstance= for\ntemplate units). This means they are not meant to be enabled or disabled using systemctl.\n")
				}
				for _, t := range u.wantedBy {
					link := "/etc/systemd/system/" + t + ".wants/" + n
					if !isSymlink(s.g.fs, link) {
						s.g.fs.symlink(u.path, link)
						p.errorf("Created symlink %s → %s.\n", link, u.path)
					}
				}
				if now {
					s.startUnitByName(p.ctx, n, warn)
				}
			} else {
				for _, w := range s.g.fs.glob("/etc/systemd/system", "*.wants") {
					if isSymlink(s.g.fs, w+"/"+n) {
						s.g.fs.remove(w + "/" + n)
						p.errorf("Removed \"%s/%s\".\n", w, n)
					}
				}
				if now {
					if sv := s.service(n); sv != nil {
						s.stopService(sv, "stop")
					}
				}
			}
		}
		return code
	case "is-active", "is-failed":
		code := 3
		if cmd == "is-failed" {
			code = 1
		}
		for _, n := range units {
			st := "inactive"
			if sv := s.service(n); sv != nil {
				st = sv.state
			}
			if !quiet {
				p.printf("%s\n", st)
			}
			if cmd == "is-active" && st == "active" || cmd == "is-failed" && st == "failed" {
				code = 0
			}
		}
		return code
	case "is-enabled":
		code := 0
		for _, n := range units {
			st := s.enabled(n)
			if st == "" {
				p.errorf("Failed to get unit file state for %s: No such file or directory\n", n)
				code = 1
				continue
			}
			if !quiet {
				p.printf("%s\n", st)
			}
			if st != "enabled" && st != "static" {
				code = 1
			}
		}
		return code
	case "is-system-running":
		for _, sv := range s.allServices() {
			if sv.state == "failed" {
				p.printf("degraded\n")
				return 1
			}
		}
		p.printf("running\n")
		return 0
	case "show":
		for _, n := range units {
			s.showUnit(p, n, props, value)
		}
		return 0
	case "status":
		code := 0
		for _, n := range units {
			code = s.statusUnit(p, n)
		}
		return code
	case "cat":
		for _, n := range units {
			u := s.readUnit(n)
			if u == nil {
				p.errorf("No files found for %s.\n", n)
				return 1
			}
			for _, f := range append([]string{u.path}, u.dropIns...) {
				p.printf("# %s\n%s\n", f, s.g.fs.readString(f))
			}
		}
		return 0
	case "reset-failed", "mask", "unmask", "kill":
		return 0
	case "list-units", "list-unit-files":
		for _, sv := range s.allServices() {
			p.printf("%s loaded %s %s %s\n", sv.u.name, sv.state, sv.sub, sv.u.desc)
		}
		return 0
	case "reboot", "poweroff":
		q := *p
		q.name = cmd
		return progReboot(&q)
	}
	p.errorf("Unknown command verb '%s'.\n", cmd)
	return 1
}

func (s *system) allServices() []*service {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []*service
	for _, sv := range s.services {
		out = append(out, sv)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].u.name < out[j].u.name })
	return out
}

func sdTime(t time.Time) string {
	if t.IsZero() {
		return ""
	}
	return t.UTC().Format("Mon 2006-01-02 15:04:05 MST")
}

func (s *system) showUnit(p *proc, n string, props []string, value bool) {
	u, _ := s.loadedUnit(n)
	sv := s.service(n)
	vals := map[string]string{"Id": n, "LoadState": "not-found", "ActiveState": "inactive", "SubState": "dead", "MainPID": "0",
		"ActiveEnterTimestamp": "", "NRestarts": "0", "Result": "success", "ExecMainStatus": "0", "UnitFileState": s.enabled(n)}
	if u != nil {
		vals["LoadState"] = "loaded"
		if u.bad != "" {
			vals["LoadState"] = "bad-setting"
		}
		vals["Description"] = u.desc
		vals["FragmentPath"] = u.path
		vals["User"] = u.user
		vals["DropInPaths"] = strings.Join(u.dropIns, " ")
		vals["Environment"] = strings.Join(u.env, " ")
		vals["Restart"] = u.restart
	}
	if sv != nil {
		s.mu.Lock()
		vals["ActiveState"], vals["SubState"] = sv.state, sv.sub
		vals["MainPID"] = strconv.Itoa(sv.pid)
		vals["ActiveEnterTimestamp"] = sdTime(sv.since)
		vals["NRestarts"] = strconv.Itoa(sv.restarts)
		if sv.result != "" {
			vals["Result"] = sv.result
		}
		vals["ExecMainStatus"] = strconv.Itoa(sv.status)
		s.mu.Unlock()
	}
	if len(props) == 0 {
		props = []string{"Id", "Description", "LoadState", "ActiveState", "SubState", "MainPID", "ActiveEnterTimestamp", "NRestarts", "Result", "UnitFileState"}
	}
	for _, k := range props {
		if value {
			p.printf("%s\n", vals[k])
		} else {
			p.printf("%s=%s\n", k, vals[k])
		}
	}
}

func (s *system) statusUnit(p *proc, n string) int {
	u, _ := s.loadedUnit(n)
	if u == nil {
		p.errorf("Unit %s could not be found.\n", n)
		return 4
	}
	sv := s.service(n)
	state, sub, pid, since := "inactive", "dead", 0, time.Time{}
	if sv != nil {
		s.mu.Lock()
		state, sub, pid, since = sv.state, sv.sub, sv.pid, sv.since
		s.mu.Unlock()
	}
	dot := "○"
	if state == "active" {
		dot = "●"
	} else if state == "failed" {
		dot = "×"
	}
	p.printf("%s %s - %s\n     Loaded: loaded (%s; %s; preset: enabled)\n", dot, n, u.desc, u.path, s.enabled(n))
	if len(u.dropIns) > 0 {
		p.printf("    Drop-In: %s\n", strings.Join(u.dropIns, " "))
	}
	p.printf("     Active: %s (%s) since %s\n", state, sub, sdTime(since))
	if pid != 0 {
		p.printf("   Main PID: %d (%s)\n", pid, path.Base(sv.exe))
	}
	p.printf("\n")
	for _, l := range s.journalLines(n, 10, false) {
		p.printf("%s\n", l)
	}
	if state == "active" {
		return 0
	}
	return 3
}

func (s *system) journalLines(unit string, n int, kernel bool) []string {
	host := strings.TrimSpace(s.g.fs.readString("/etc/hostname"))
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []string
	for _, l := range s.journal {
		if l.unit == "" && l.text == "-- Boot --" {
			continue
		}
		if kernel && l.unit != "kernel" || !kernel && unit != "" && l.unit != unit {
			continue
		}
		out = append(out, fmt.Sprintf("%s %s %s", l.at.UTC().Format("Jan 02 15:04:05"), host, l.text))
	}
	if kernel {
		out = nil
		for _, d := range s.dmesg {
			if i := strings.Index(d, "] "); i >= 0 {
				d = d[i+2:]
			}
			out = append(out, fmt.Sprintf("%s %s kernel: %s", s.bootTime.UTC().Format("Jan 02 15:04:05"), host, d))
		}
	}
	if n > 0 && len(out) > n {
		out = out[len(out)-n:]
	}
	return out
}

func progJournalctl(p *proc) int {
	s := p.g.sys
	args := p.args[1:]
	unit := ""
	n := 0
	kernel := false
	output := ""
	for i := 0; i < len(args); i++ {
		a := args[i]
		switch {
		case a == "-u" || a == "--unit":
			if i+1 < len(args) {
				unit = unitName(args[i+1])
				i++
			}
		case strings.HasPrefix(a, "--unit="):
			unit = unitName(strings.TrimPrefix(a, "--unit="))
		case strings.HasPrefix(a, "-u") && len(a) > 2:
			unit = unitName(a[2:])
		case a == "-n" || a == "--lines":
			if i+1 < len(args) {
				n, _ = strconv.Atoi(args[i+1])
				i++
			}
		case strings.HasPrefix(a, "-n") && len(a) > 2:
			n, _ = strconv.Atoi(a[2:])
		case strings.HasPrefix(a, "--lines="):
			n, _ = strconv.Atoi(strings.TrimPrefix(a, "--lines="))
		case a == "-k" || a == "--dmesg":
			kernel = true
		case a == "-o" || a == "--output":
			if i+1 < len(args) {
				output = args[i+1]
				i++
			}
		case strings.HasPrefix(a, "--output="):
			output = strings.TrimPrefix(a, "--output=")
		}
	}
	if !p.root() && !p.user.inGroup(4) {
		p.errorf("Hint: You are currently not seeing messages from other users and the system.\n      Users in groups 'adm', 'systemd-journal' can see all messages.\n      Pass -q to turn off this notice.\n")
		p.printf("-- No entries --\n")
		return 0
	}
	lines := s.journalLines(unit, n, kernel)
	if kernel && output == "short-monotonic" {
		host := strings.TrimSpace(s.g.fs.readString("/etc/hostname"))
		s.mu.Lock()
		lines = nil
		for _, d := range s.dmesg {
			if strings.HasPrefix(d, "[") {
				if i := strings.Index(d, "] "); i >= 0 {
					d = d[:i+1] + " " + host + " kernel: " + d[i+2:]
				}
			}
			lines = append(lines, d)
		}
		s.mu.Unlock()
	}
	if len(lines) == 0 {
		p.printf("-- No entries --\n")
	}
	for _, l := range lines {
		p.printf("%s\n", l)
	}
	return 0
}

// progReboot: reboot / poweroff / shutdown inside the guest; the SSH connection drops.
func progReboot(p *proc) int {
	if !p.root() {
		p.errorf("Call to Reboot failed: Interactive authentication required.\n")
		return 1
	}
	g := p.g
	off := p.name == "poweroff" || p.name == "halt" || p.name == "shutdown" && (contains(p.args, "-h") || contains(p.args, "-P") || contains(p.args, "--poweroff"))
	if p.name == "shutdown" && contains(p.args, "-r") {
		off = false
	}
	go func() {
		time.Sleep(20 * time.Millisecond)
		if off {
			g.poweroffFromInside()
		} else {
			g.Reboot()
		}
	}()
	if p.name == "shutdown" {
		p.errorf("Shutdown scheduled for %s, use 'shutdown -c' to cancel.\n", time.Now().UTC().Format("Mon 2006-01-02 15:04:05 MST"))
	}
	<-p.ctx.Done()
	return 143
}
