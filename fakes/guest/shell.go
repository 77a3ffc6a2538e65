package guest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"sort"
	"strings"
	"syscall"

	"mvdan.cc/sh/v3/expand"
	"mvdan.cc/sh/v3/interp"
	"mvdan.cc/sh/v3/syntax"
)

const (
	userPath   = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin:/usr/games:/usr/local/games:/snap/bin"
	securePath = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin:/snap/bin"
)

// proc is one running simulated program.
type proc struct {
	g      *Guest
	ctx    context.Context
	user   *user
	name   string // program name (argv[0] base)
	path   string // resolved guest path of the binary
	args   []string
	env    map[string]string
	dir    string
	stdin  io.Reader
	stdout io.Writer
	stderr io.Writer
}

type program func(p *proc) int

// programs maps simulated program names to their implementations (filled by init functions).
var programs = map[string]program{}

func (p *proc) printf(format string, a ...any) { fmt.Fprintf(p.stdout, format, a...) }
func (p *proc) errorf(format string, a ...any) { fmt.Fprintf(p.stderr, format, a...) }

// fail prints "prog: msg" to stderr and returns code.
func (p *proc) fail(code int, format string, a ...any) int {
	fmt.Fprintf(p.stderr, p.name+": "+format+"\n", a...)
	return code
}

func (p *proc) abs(name string) string { return cleanPath(p.dir, name) }

func (p *proc) root() bool { return p.user.UID == 0 }

// open opens a file with the process's permissions.
func (p *proc) open(name string, flag int, perm fs.FileMode) (*os.File, error) {
	return p.g.fs.open(p.user, p.abs(name), flag, perm)
}

func (p *proc) readFile(name string) ([]byte, error) {
	f, err := p.open(name, os.O_RDONLY, 0)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	fi, _ := f.Stat()
	if fi != nil && fi.IsDir() {
		return nil, &fs.PathError{Op: "read", Path: name, Err: syscall.EISDIR}
	}
	return io.ReadAll(f)
}

func (p *proc) writeFile(name string, data []byte, perm fs.FileMode) error {
	f, err := p.open(name, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, perm)
	if err != nil {
		return err
	}
	_, err = f.Write(data)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return err
}

// errText renders an error the way coreutils do ("No such file or directory").
func errText(err error) string {
	var pe *fs.PathError
	if errors.As(err, &pe) {
		err = pe.Err
	}
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return "No such file or directory"
	case errors.Is(err, fs.ErrPermission):
		return "Permission denied"
	case errors.Is(err, fs.ErrExist):
		return "File exists"
	}
	s := err.Error()
	if s == "" {
		return s
	}
	return strings.ToUpper(s[:1]) + s[1:]
}

// sub runs another program (with the same or a changed user/env) and returns its exit code.
func (p *proc) sub(u *user, env map[string]string, args []string) int {
	q := *p
	if u != nil {
		q.user = u
	}
	if env != nil {
		q.env = env
	}
	return q.g.execArgs(&q, args)
}

// run runs a shell command line as the process's user and returns its stdout (helper).
func (p *proc) shell(script string) (string, int) {
	var out bytes.Buffer
	code := p.g.runShell(p.ctx, shellSpec{user: p.user, env: p.env, dir: p.dir, script: script, stdin: strings.NewReader(""), stdout: &out, stderr: p.stderr})
	return out.String(), code
}

type shellSpec struct {
	user   *user
	env    map[string]string
	dir    string
	script string
	name   string // $0
	params []string
	stdin  io.Reader
	stdout io.Writer
	stderr io.Writer
}

// loginEnv is the environment sshd + PAM give a user.
func (g *Guest) loginEnv(u *user) map[string]string {
	return map[string]string{
		"PATH": userPath, "HOME": u.Home, "USER": u.Name, "LOGNAME": u.Name, "SHELL": u.Shell,
		"LANG": "C.UTF-8", "MOTD_SHOWN": "pam", "XDG_RUNTIME_DIR": fmt.Sprintf("/run/user/%d", u.UID),
		"XDG_SESSION_TYPE": "tty", "XDG_SESSION_CLASS": "user",
	}
}

// rootEnv is the environment of services and agent commands run as root.
func rootEnv() map[string]string {
	return map[string]string{"PATH": securePath, "HOME": "/root", "USER": "root", "LOGNAME": "root", "SHELL": "/bin/bash", "LANG": "C.UTF-8"}
}

// runShell runs a script through the POSIX interpreter over the guest filesystem.
func (g *Guest) runShell(ctx context.Context, sp shellSpec) int {
	name := sp.name
	if name == "" {
		name = "bash"
	}
	file, err := syntax.NewParser(syntax.Variant(syntax.LangBash)).Parse(strings.NewReader(sp.script), "")
	if err != nil {
		msg := err.Error()
		if pe, ok := err.(syntax.ParseError); ok {
			msg = fmt.Sprintf("line %d: syntax error: %s", pe.Pos.Line(), pe.Text)
		}
		fmt.Fprintf(sp.stderr, "%s: %s\n", name, msg)
		return 2
	}
	env := map[string]string{}
	for k, v := range sp.env {
		env[k] = v
	}
	env["UID"] = fmt.Sprint(sp.user.UID)
	env["EUID"] = fmt.Sprint(sp.user.UID)
	env["GID"] = fmt.Sprint(sp.user.GID)
	pairs := make([]string, 0, len(env))
	for k, v := range env {
		pairs = append(pairs, k+"="+v)
	}
	sort.Strings(pairs)
	u := sp.user
	dir := sp.dir
	if dir == "" || !g.fs.isDir(dir) {
		dir = "/"
	}
	stdin, closeStdin := stdinFile(sp.stdin)
	r, err := interp.New(
		interp.Env(expand.ListEnviron(pairs...)),
		interp.Params(append([]string{"--"}, sp.params...)...),
		interp.StdIO(stdin, sp.stdout, sp.stderr),
		interp.OpenHandler(func(hctx context.Context, p string, flag int, perm os.FileMode) (io.ReadWriteCloser, error) {
			hc := interp.HandlerCtx(hctx)
			switch p {
			case "/dev/null":
				return devNull{}, nil
			case "/dev/stdout":
				return nopRWC{w: hc.Stdout}, nil
			case "/dev/stderr":
				return nopRWC{w: hc.Stderr}, nil
			}
			f, err := g.fs.open(u, cleanPath(hc.Dir, p), flag, perm)
			if err != nil {
				return nil, &fs.PathError{Op: fmt.Sprintf("%s: line %d:", name, hc.Pos.Line()), Path: p, Err: bashErr{errText(err)}}
			}
			return f, nil
		}),
		interp.StatHandler(func(hctx context.Context, p string, follow bool) (fs.FileInfo, error) {
			return g.fs.stat(cleanPath(interp.HandlerCtx(hctx).Dir, p), follow)
		}),
		interp.ReadDirHandler2(func(hctx context.Context, p string) ([]fs.DirEntry, error) {
			return g.fs.readDir(cleanPath(interp.HandlerCtx(hctx).Dir, p))
		}),
		interp.AccessHandler(func(hctx context.Context, p string, mode interp.AccessMode) error {
			gp := cleanPath(interp.HandlerCtx(hctx).Dir, p)
			fi, err := g.fs.stat(gp, true)
			if err != nil {
				return err
			}
			rp, _ := g.fs.resolve(gp, true)
			for _, m := range []struct {
				bit  interp.AccessMode
				want fs.FileMode
			}{{interp.AccessRead, 4}, {interp.AccessWrite, 2}, {interp.AccessExec, 1}} {
				if mode&m.bit != 0 && !g.fs.access(u, rp, fi, m.want) {
					return &fs.PathError{Op: "access", Path: p, Err: syscall.EACCES}
				}
			}
			return nil
		}),
		interp.CallHandler(func(hctx context.Context, args []string) ([]string, error) {
			switch {
			case args[0] == "command" && len(args) > 1 && (args[1] == "-v" || args[1] == "-V"):
				return append([]string{"aimachine-sim-command-v"}, args[1:]...), nil
			case args[0] == "type" && len(args) > 1:
				return append([]string{"aimachine-sim-type"}, args[1:]...), nil
			case args[0] == "exec" && len(args) > 1:
				return args[1:], nil
			}
			return args, nil
		}),
		interp.ExecHandlers(func(next interp.ExecHandlerFunc) interp.ExecHandlerFunc {
			return func(hctx context.Context, args []string) error {
				hc := interp.HandlerCtx(hctx)
				p := &proc{g: g, ctx: hctx, user: u, args: args, dir: hc.Dir,
					stdin: hc.Stdin, stdout: hc.Stdout, stderr: hc.Stderr, env: map[string]string{}}
				if p.stdin == nil {
					p.stdin = strings.NewReader("")
				}
				hc.Env.Each(func(k string, v expand.Variable) bool {
					if v.Exported && v.Kind == expand.String {
						p.env[k] = v.Str
					}
					return true
				})
				p.env["PWD"] = hc.Dir
				code := g.execArgs(p, args)
				if code == 0 {
					return nil
				}
				return interp.NewExitStatus(uint8(code))
			}
		}),
	)
	if err != nil {
		closeStdin()
		fmt.Fprintf(sp.stderr, "%s: %v\n", name, err)
		return 1
	}
	r.Dir = dir
	err = r.Run(ctx, file)
	closeStdin()
	if st, ok := interp.IsExitStatus(err); ok {
		return int(st)
	}
	if err != nil {
		if ctx.Err() != nil {
			return 143
		}
		fmt.Fprintf(sp.stderr, "%s: %v\n", name, err)
		return 1
	}
	return 0
}

// stdinFile gives the interpreter an *os.File for stdin (it would make a pipe itself and never
// close it); the returned func closes what was made here.
func stdinFile(r io.Reader) (*os.File, func()) {
	if f, ok := r.(*os.File); ok {
		return f, func() {}
	}
	if sr, ok := r.(*strings.Reader); ok && sr.Len() == 0 {
		f, err := os.Open(os.DevNull)
		if err == nil {
			return f, func() { f.Close() }
		}
	}
	pr, pw, err := os.Pipe()
	if err != nil {
		return nil, func() {}
	}
	go func() {
		io.Copy(pw, r)
		pw.Close()
	}()
	return pr, func() { pr.Close() }
}

type bashErr struct{ s string }

func (e bashErr) Error() string { return e.s }

type devNull struct{}

func (devNull) Read([]byte) (int, error)    { return 0, io.EOF }
func (devNull) Write(b []byte) (int, error) { return len(b), nil }
func (devNull) Close() error                { return nil }

type nopRWC struct{ w io.Writer }

func (n nopRWC) Read([]byte) (int, error)    { return 0, io.EOF }
func (n nopRWC) Write(b []byte) (int, error) { return n.w.Write(b) }
func (nopRWC) Close() error                  { return nil }

// lookPath finds a command in the guest PATH; it returns the guest path.
func (g *Guest) lookPath(name, pathEnv string) (string, bool) {
	if strings.Contains(name, "/") {
		return name, g.fs.exists(name)
	}
	for _, d := range strings.Split(pathEnv, ":") {
		if d == "" {
			continue
		}
		p := path.Join(d, name)
		fi, err := g.fs.stat(p, true)
		if err == nil && !fi.IsDir() && fi.Mode().Perm()&0o111 != 0 {
			return p, true
		}
	}
	return "", false
}

// execArgs resolves argv[0] in the guest filesystem and runs it.
func (g *Guest) execArgs(p *proc, args []string) int {
	if len(args) == 0 {
		return 0
	}
	if p.ctx.Err() != nil {
		return 143
	}
	g.recordArgv(args)
	if strings.HasPrefix(args[0], "aimachine-sim-") {
		if prog := programs[strings.TrimPrefix(args[0], "aimachine-sim-")]; prog != nil {
			p.name, p.args = args[0], args
			return prog(p)
		}
	}
	shellName := "bash"
	cmdPath, ok := g.lookPath(args[0], p.env["PATH"])
	if !ok {
		if strings.Contains(args[0], "/") {
			fmt.Fprintf(p.stderr, "%s: line 1: %s: No such file or directory\n", shellName, args[0])
		} else {
			fmt.Fprintf(p.stderr, "%s: line 1: %s: command not found\n", shellName, args[0])
		}
		return 127
	}
	abs := cleanPath(p.dir, cmdPath)
	fi, err := g.fs.stat(abs, true)
	if err == nil && fi.IsDir() {
		fmt.Fprintf(p.stderr, "%s: line 1: %s: Is a directory\n", shellName, args[0])
		return 126
	}
	rp, _ := g.fs.resolve(abs, true)
	if err != nil || !g.fs.access(p.user, rp, fi, 1) || g.fs.checkTraverse(p.user, rp) != nil {
		fmt.Fprintf(p.stderr, "%s: line 1: %s: Permission denied\n", shellName, args[0])
		return 126
	}
	head := make([]byte, 256)
	hp, _, _ := g.fs.host(abs, true)
	n := 0
	if f, err := os.Open(hp); err == nil {
		n, _ = io.ReadFull(f, head)
		f.Close()
	}
	head = head[:n]
	p.path = abs
	switch {
	case bytes.HasPrefix(head, []byte(simMagic)):
		progName := strings.TrimSpace(strings.SplitN(string(head[len(simMagic):]), "\n", 2)[0])
		prog := programs[progName]
		if prog == nil {
			fmt.Fprintf(p.stderr, "%s: line 1: %s: cannot execute binary file: Exec format error\n", shellName, args[0])
			return 126
		}
		p.name = path.Base(args[0])
		p.args = args
		return prog(p)
	case bytes.HasPrefix(head, []byte("#!")):
		line := strings.Fields(strings.TrimPrefix(strings.SplitN(string(head), "\n", 2)[0], "#!"))
		if len(line) == 0 {
			line = []string{"/bin/sh"}
		}
		interpArgs := append(line, abs)
		return g.execArgs(p, append(interpArgs, args[1:]...))
	case bytes.HasPrefix(head, []byte("\x7fELF")):
		fmt.Fprintf(p.stderr, "%s: line 1: %s: cannot execute binary file: Exec format error\n", shellName, args[0])
		return 126
	default:
		// a script without #! runs in sh
		return g.execArgs(p, append([]string{"/bin/sh", abs}, args[1:]...))
	}
}

func init() {
	programs["sh"] = progShell
	programs["bash"] = progShell
	programs["dash"] = progShell
	programs["sudo"] = progSudo
	programs["su"] = progSu
	programs["command-v"] = progCommandV
	programs["type"] = progType
	programs["env"] = progEnv
	programs["timeout"] = progTimeout
	programs["nohup"] = progNohup
}

// progShell is sh / bash: -c script, a script file, or the script on stdin.
func progShell(p *proc) int {
	name := p.name
	if name == "dash" {
		name = "sh"
	}
	args := p.args[1:]
	var script string
	dollar0 := name
	var params []string
	for len(args) > 0 && strings.HasPrefix(args[0], "-") && args[0] != "-" {
		a := args[0]
		args = args[1:]
		switch {
		case a == "-c":
			if len(args) == 0 {
				return p.fail(2, "-c: option requires an argument")
			}
			script = args[0]
			args = args[1:]
			if len(args) > 0 {
				dollar0, params = args[0], args[1:]
			}
			args = nil
			goto run
		case a == "-e" || a == "-x" || a == "-u" || a == "-eu" || a == "-ex" || a == "-l" || a == "-s" || a == "--login" || a == "-o" || a == "--noprofile" || a == "--norc":
			if a == "-o" && len(args) > 0 {
				args = args[1:]
			}
			if strings.Contains(a, "e") && a != "--noprofile" {
				script = "set -e\n"
			}
		}
	}
	if len(args) > 0 {
		b, err := p.readFile(args[0])
		if err != nil {
			p.errorf("%s: %s: %s\n", name, args[0], errText(err))
			return 127
		}
		script += string(b)
		dollar0, params = args[0], args[1:]
	} else {
		b, _ := io.ReadAll(p.stdin)
		script += string(b)
		p.stdin = strings.NewReader("")
	}
run:
	return p.g.runShell(p.ctx, shellSpec{user: p.user, env: p.env, dir: p.dir, script: script, name: dollar0, params: params, stdin: p.stdin, stdout: p.stdout, stderr: p.stderr})
}

// sudoAllowed reports whether the user may use sudo (group sudo/admin or a sudoers.d entry).
func (g *Guest) sudoAllowed(u *user) (allowed, nopasswd bool) {
	if u.UID == 0 {
		return true, true
	}
	ents, _ := g.fs.readDir("/etc/sudoers.d")
	for _, e := range ents {
		for _, line := range strings.Split(g.fs.readString("/etc/sudoers.d/"+e.Name()), "\n") {
			f := strings.Fields(line)
			if len(f) > 0 && f[0] == u.Name {
				return true, strings.Contains(line, "NOPASSWD")
			}
		}
	}
	if sudo, ok := g.fs.groupByName("sudo"); ok && u.inGroup(sudo.gid) {
		return true, false
	}
	return false, false
}

// progSudo: passwordless sudo for the cloud-init user; env_reset with secure_path; VAR=val allowed.
func progSudo(p *proc) int {
	args := p.args[1:]
	target := "root"
	keepEnv := false
	login := false
	nonInteractive := false
	var preserve []string
	for len(args) > 0 && strings.HasPrefix(args[0], "-") {
		a := args[0]
		args = args[1:]
		switch {
		case a == "--":
			goto done
		case a == "-u" || a == "--user":
			if len(args) == 0 {
				return p.fail(1, "option requires an argument -- 'u'")
			}
			target = args[0]
			args = args[1:]
		case strings.HasPrefix(a, "-u"):
			target = a[2:]
		case a == "-E" || a == "--preserve-env":
			keepEnv = true
		case strings.HasPrefix(a, "--preserve-env="):
			preserve = strings.Split(strings.TrimPrefix(a, "--preserve-env="), ",")
		case a == "-n" || a == "--non-interactive":
			nonInteractive = true
		case a == "-H" || a == "-S" || a == "-k" || a == "-nE" || a == "-En":
			if strings.Contains(a, "E") {
				keepEnv = true
			}
			if strings.Contains(a, "n") {
				nonInteractive = true
			}
		case a == "-i" || a == "--login":
			login = true
		case a == "-V" || a == "--version":
			p.printf("Sudo version 1.9.15p5\nSudoers policy plugin version 1.9.15p5\n")
			return 0
		default:
			return p.fail(1, "invalid option -- '%s'", strings.TrimLeft(a, "-"))
		}
	}
done:
	_ = nonInteractive
	allowed, nopasswd := p.g.sudoAllowed(p.user)
	if !allowed {
		p.errorf("%s is not in the sudoers file.\n", p.user.Name)
		return 1
	}
	if !nopasswd {
		p.errorf("sudo: a terminal is required to read the password; either use the -S option to read from standard input or configure an askpass helper\nsudo: a password is required\n")
		return 1
	}
	u, err := p.g.fs.lookupUser(target)
	if err != nil {
		p.errorf("sudo: unknown user %s\nsudo: error initializing audit plugin sudoers_audit\n", target)
		return 1
	}
	env := map[string]string{"PATH": securePath, "HOME": u.Home, "USER": u.Name, "LOGNAME": u.Name, "SHELL": u.Shell,
		"SUDO_USER": p.user.Name, "SUDO_UID": fmt.Sprint(p.user.UID), "SUDO_GID": fmt.Sprint(p.user.GID),
		"LANG": p.env["LANG"], "TERM": p.env["TERM"]}
	if env["TERM"] == "" {
		delete(env, "TERM")
	}
	if keepEnv {
		for k, v := range p.env {
			if k != "PATH" {
				env[k] = v
			}
		}
	}
	for _, k := range preserve {
		if v, ok := p.env[k]; ok {
			env[k] = v
		}
	}
	for len(args) > 0 && strings.Contains(args[0], "=") && !strings.HasPrefix(args[0], "=") {
		k, v, _ := strings.Cut(args[0], "=")
		env[k] = v
		args = args[1:]
	}
	if len(args) > 0 {
		cmdPath, _ := p.g.lookPath(args[0], securePath)
		env["SUDO_COMMAND"] = strings.TrimSpace(cmdPath + " " + strings.Join(args[1:], " "))
	}
	if len(args) == 0 {
		if login {
			args = []string{u.Shell}
		} else {
			p.errorf("usage: sudo -h | -K | -k | -V\nusage: sudo -v [-ABkNnS] [-g group] [-h host] [-p prompt] [-u user]\n")
			return 1
		}
	}
	q := *p
	q.user = u
	q.env = env
	if login {
		q.dir = u.Home
	}
	if _, ok := p.g.lookPath(args[0], securePath); !ok && !strings.Contains(args[0], "/") {
		p.errorf("sudo: %s: command not found\n", args[0])
		return 1
	}
	return p.g.execArgs(&q, args)
}

func progSu(p *proc) int {
	if !p.root() {
		p.errorf("Password: su: Authentication failure\n")
		return 1
	}
	args := p.args[1:]
	target := "root"
	cmd := ""
	for i := 0; i < len(args); i++ {
		switch args[i] {
		case "-", "-l", "--login":
		case "-c":
			if i+1 < len(args) {
				cmd = args[i+1]
				i++
			}
		case "-s":
			i++
		default:
			target = args[i]
		}
	}
	u, err := p.g.fs.lookupUser(target)
	if err != nil {
		p.errorf("su: user %s does not exist or the user entry does not contain all the required fields\n", target)
		return 1
	}
	if strings.HasSuffix(u.Shell, "nologin") || u.Shell == "/bin/false" {
		p.errorf("This account is currently not available.\n")
		return 1
	}
	env := map[string]string{"PATH": userPath, "HOME": u.Home, "USER": u.Name, "LOGNAME": u.Name, "SHELL": u.Shell}
	return p.g.runShell(p.ctx, shellSpec{user: u, env: env, dir: u.Home, script: cmd, stdin: p.stdin, stdout: p.stdout, stderr: p.stderr})
}

func progCommandV(p *proc) int {
	code := 0
	for _, a := range p.args[2:] {
		if interp.IsBuiltin(a) || syntax.IsKeyword(a) {
			p.printf("%s\n", a)
			continue
		}
		if fp, ok := p.g.lookPath(a, p.env["PATH"]); ok {
			p.printf("%s\n", fp)
			continue
		}
		code = 1
	}
	return code
}

func progType(p *proc) int {
	code := 0
	for _, a := range p.args[1:] {
		if strings.HasPrefix(a, "-") {
			continue
		}
		switch {
		case syntax.IsKeyword(a):
			p.printf("%s is a shell keyword\n", a)
		case interp.IsBuiltin(a):
			p.printf("%s is a shell builtin\n", a)
		default:
			if fp, ok := p.g.lookPath(a, p.env["PATH"]); ok {
				p.printf("%s is %s\n", a, fp)
			} else {
				p.errorf("bash: type: %s: not found\n", a)
				code = 1
			}
		}
	}
	return code
}

func progEnv(p *proc) int {
	args := p.args[1:]
	env := map[string]string{}
	for k, v := range p.env {
		env[k] = v
	}
	for len(args) > 0 {
		a := args[0]
		if a == "-i" || a == "-" {
			env = map[string]string{}
		} else if a == "-u" && len(args) > 1 {
			delete(env, args[1])
			args = args[1:]
		} else if strings.Contains(a, "=") {
			k, v, _ := strings.Cut(a, "=")
			env[k] = v
		} else {
			break
		}
		args = args[1:]
	}
	if len(args) == 0 {
		keys := make([]string, 0, len(env))
		for k := range env {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		for _, k := range keys {
			p.printf("%s=%s\n", k, env[k])
		}
		return 0
	}
	q := *p
	q.env = env
	code := p.g.execArgs(&q, args)
	if code == 127 {
		return 127
	}
	return code
}

func progTimeout(p *proc) int {
	args := p.args[1:]
	for len(args) > 0 && strings.HasPrefix(args[0], "-") {
		if (args[0] == "-s" || args[0] == "-k") && len(args) > 1 {
			args = args[1:]
		}
		args = args[1:]
	}
	if len(args) < 2 {
		return p.fail(125, "missing operand")
	}
	d, err := parseSleep(args[0])
	if err != nil {
		return p.fail(125, "invalid time interval '%s'", args[0])
	}
	ctx, cancel := context.WithCancel(p.ctx)
	if sd := p.g.scale(d); sd > 0 {
		ctx, cancel = context.WithTimeout(p.ctx, sd)
	}
	defer cancel()
	q := *p
	q.ctx = ctx
	code := p.g.execArgs(&q, args[1:])
	if ctx.Err() == context.DeadlineExceeded && p.ctx.Err() == nil {
		return 124
	}
	return code
}

func progNohup(p *proc) int {
	if len(p.args) < 2 {
		return p.fail(125, "missing operand")
	}
	return p.g.execArgs(p, p.args[1:])
}
