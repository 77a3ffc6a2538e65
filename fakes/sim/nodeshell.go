package sim

import (
	"bytes"
	"context"
	"encoding/binary"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"strings"
	"sync"
	"syscall"

	"golang.org/x/crypto/ssh"
	"mvdan.cc/sh/v3/expand"
	"mvdan.cc/sh/v3/interp"
	"mvdan.cc/sh/v3/syntax"
)

// nodeOps is what the simulated node's root shell changes (the fake API's state).
type nodeOps interface {
	SetStorageContent(storage string, content []string) (warnings []string, err error)
	VolumePath(volid string) (string, error)
	WriteNodeFile(path string, data []byte) error
	RemoveNodeFile(path string)
	ReadNodeFile(path string) ([]byte, bool)
}

// nodeFiles is the node's filesystem as far as the simulator models it: regular files written
// through the node shell (a file in a storage's snippets directory also becomes that storage's
// snippet volume, WriteNodeFile). Directories are not modelled: every directory exists.
type nodeFiles struct {
	mu    sync.Mutex
	files map[string][]byte
}

// get reads a file: one written through the shell, else a snippet volume of the node model.
func (n *nodeFiles) get(node nodeOps, p string) ([]byte, bool) {
	n.mu.Lock()
	b, ok := n.files[p]
	n.mu.Unlock()
	if ok {
		return b, true
	}
	return node.ReadNodeFile(p)
}

// del removes a file; one in a snippets directory also stops being a snippet volume.
func (n *nodeFiles) del(node nodeOps, p string) bool {
	n.mu.Lock()
	_, ok := n.files[p]
	delete(n.files, p)
	n.mu.Unlock()
	if _, snippet := node.ReadNodeFile(p); snippet {
		ok = true
	}
	node.RemoveNodeFile(p)
	return ok
}

// put stores a file; one in a snippets directory is also handed to the node model.
func (n *nodeFiles) put(node nodeOps, p string, data []byte) {
	n.mu.Lock()
	if n.files == nil {
		n.files = map[string][]byte{}
	}
	n.files[p] = append([]byte(nil), data...)
	n.mu.Unlock()
	_ = node.WriteNodeFile(p, data) // refused for files outside a snippets directory: kept here only
}

// session runs exec requests of one session channel; an interactive shell is refused.
func (j *jumpHost) session(nch ssh.NewChannel) {
	ch, reqs, err := nch.Accept()
	if err != nil {
		return
	}
	defer ch.Close()
	for req := range reqs {
		switch req.Type {
		case "exec":
			var p struct{ Cmd string }
			if err := ssh.Unmarshal(req.Payload, &p); err != nil {
				_ = req.Reply(false, nil)
				continue
			}
			_ = req.Reply(true, nil)
			code := j.runNode(p.Cmd, ch, ch, ch.Stderr())
			_, _ = ch.SendRequest("exit-status", false, binary.BigEndian.AppendUint32(nil, uint32(code)))
			return
		case "env", "pty-req":
			_ = req.Reply(req.Type == "env", nil)
		default: // shell, subsystem (sftp)
			j.sessionsRefused.Add(1)
			_ = req.Reply(false, nil)
		}
	}
}

// runNode runs one exec request as root's login shell does: sshd hands the command to
// `bash -c` (root's shell on a PVE node, Debian's /bin/bash), here mvdan.cc/sh's bash
// interpreter, as fakes/guest does. It returns the exit code.
func (j *jumpHost) runNode(cmd string, stdin io.Reader, stdout, stderr io.Writer) int {
	j.log.Info("node shell", "cmd", cmd)
	if j.node == nil {
		fmt.Fprintln(stderr, "pvesim: no node state")
		return 1
	}
	return j.nodeScript(context.Background(), "bash", cmd, stdin, stdout, stderr)
}

// nodeScript runs script with shell name ("bash" or "sh"), whose messages it prints as that
// shell does: bash "bash: line N: X: command not found" (fakes/guest/shell.go, guest.md),
// dash (Debian's sh) "sh: N: X: not found"; both exit 127.
func (j *jumpHost) nodeScript(ctx context.Context, name, script string, stdin io.Reader, stdout, stderr io.Writer) int {
	lang := syntax.LangBash
	if name == "sh" {
		lang = syntax.LangPOSIX
	}
	file, err := syntax.NewParser(syntax.Variant(lang)).Parse(strings.NewReader(script), "")
	if err != nil {
		msg := err.Error()
		if pe, ok := err.(syntax.ParseError); ok {
			msg = fmt.Sprintf("line %d: syntax error: %s", pe.Pos.Line(), pe.Text)
		}
		fmt.Fprintf(stderr, "%s: %s\n", name, msg)
		return 2
	}
	r, err := interp.New(
		interp.Env(expand.ListEnviron("HOME=/root", "USER=root", "LOGNAME=root", "SHELL=/bin/bash",
			"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin")),
		interp.StdIO(stdin, stdout, stderr),
		interp.OpenHandler(func(hctx context.Context, p string, flag int, perm os.FileMode) (io.ReadWriteCloser, error) {
			hc := interp.HandlerCtx(hctx)
			abs := absPath(hc.Dir, p)
			if abs == "/dev/null" {
				return nodeFile{w: io.Discard}, nil
			}
			if flag&(os.O_WRONLY|os.O_RDWR) != 0 {
				var prev []byte
				if flag&os.O_APPEND != 0 {
					prev, _ = j.files.get(j.node, abs)
				}
				b := bytes.NewBuffer(append([]byte(nil), prev...))
				j.files.put(j.node, abs, b.Bytes()) // `: > F` creates the file
				return nodeFile{w: b, close: func() { j.files.put(j.node, abs, b.Bytes()) }}, nil
			}
			data, ok := j.files.get(j.node, abs)
			if !ok {
				return nil, &fs.PathError{Op: fmt.Sprintf("%s: line %d:", name, hc.Pos.Line()), Path: p, Err: syscall.ENOENT}
			}
			return nodeFile{r: bytes.NewReader(data)}, nil
		}),
		interp.ExecHandlers(func(next interp.ExecHandlerFunc) interp.ExecHandlerFunc {
			return func(hctx context.Context, args []string) error {
				hc := interp.HandlerCtx(hctx)
				in := hc.Stdin
				if in == nil {
					in = strings.NewReader("")
				}
				code := j.nodeProgram(hctx, name, int(hc.Pos.Line()), hc.Dir, args, in, hc.Stdout, hc.Stderr)
				if code == 0 {
					return nil
				}
				return interp.NewExitStatus(uint8(code))
			}
		}),
	)
	if err != nil {
		fmt.Fprintf(stderr, "%s: %v\n", name, err)
		return 1
	}
	r.Dir = "/root"
	err = r.Run(ctx, file)
	if st, ok := interp.IsExitStatus(err); ok {
		return int(st)
	}
	if err != nil {
		fmt.Fprintf(stderr, "%s: %v\n", name, err)
		return 1
	}
	return 0
}

type nodeFile struct {
	r     io.Reader
	w     io.Writer
	close func()
}

func (f nodeFile) Read(p []byte) (int, error) {
	if f.r == nil {
		return 0, syscall.EBADF
	}
	return f.r.Read(p)
}

func (f nodeFile) Write(p []byte) (int, error) {
	if f.w == nil {
		return 0, syscall.EBADF
	}
	return f.w.Write(p)
}

func (f nodeFile) Close() error {
	if f.close != nil {
		f.close()
	}
	return nil
}

func absPath(dir, p string) string {
	if !path.IsAbs(p) {
		p = path.Join(dir, p)
	}
	return path.Clean(p)
}

// splitOpts separates leading single-letter options (-p, -f, -rf, -m MODE) from operands.
func splitOpts(args []string, withValue string) (opts map[byte]string, operands []string) {
	opts = map[byte]string{}
	for i := 0; i < len(args); i++ {
		a := args[i]
		if a == "--" {
			return opts, args[i+1:]
		}
		if len(a) < 2 || a[0] != '-' {
			return opts, args[i:]
		}
		for k := 1; k < len(a); k++ {
			c := a[k]
			if strings.IndexByte(withValue, c) >= 0 {
				v := a[k+1:]
				if v == "" && i+1 < len(args) {
					i++
					v = args[i]
				}
				opts[c] = v
				break
			}
			opts[c] = ""
		}
	}
	return opts, nil
}

// nodeProgram runs one program on the node. The coreutils texts are GNU coreutils'
// ("cat: F: No such file or directory", "mv: cannot stat 'F': ...", "chmod: cannot access
// 'F': ...", rm's preserve-root failsafe), as in fakes/guest/coreutils.go.
func (j *jumpHost) nodeProgram(ctx context.Context, shell string, line int, dir string, args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	prog := path.Base(args[0])
	switch prog {
	case "sh", "bash", "dash":
		opts, rest := splitOpts(args[1:], "")
		if _, ok := opts['c']; !ok || len(rest) == 0 {
			fmt.Fprintf(stderr, "pvesim: %s: only -c SCRIPT is modelled on the node\n", prog)
			return 2
		}
		name := "bash"
		if prog != "bash" {
			name = "sh"
		}
		return j.nodeScript(ctx, name, rest[0], stdin, stdout, stderr)
	case "pvesm":
		return j.pvesm(args[1:], stdout, stderr)
	case "mkdir":
		_, rest := splitOpts(args[1:], "m")
		if len(rest) == 0 {
			fmt.Fprintln(stderr, "mkdir: missing operand\nTry 'mkdir --help' for more information.")
			return 1
		}
		return 0 // directories are not modelled: every directory exists
	case "rm":
		opts, rest := splitOpts(args[1:], "")
		_, force := opts['f']
		rec := hasOpt(opts, 'r') || hasOpt(opts, 'R')
		code := 0
		for _, p := range rest {
			abs := absPath(dir, p)
			if abs == "/" && rec {
				fmt.Fprintln(stderr, "rm: it is dangerous to operate recursively on '/'\nrm: use --no-preserve-root to override this failsafe")
				code = 1
				continue
			}
			if !j.files.del(j.node, abs) && !force {
				fmt.Fprintf(stderr, "rm: cannot remove '%s': No such file or directory\n", p)
				code = 1
			}
		}
		return code
	case "chmod":
		_, rest := splitOpts(args[1:], "")
		if len(rest) < 2 {
			fmt.Fprintln(stderr, "chmod: missing operand\nTry 'chmod --help' for more information.")
			return 1
		}
		code := 0
		for _, p := range rest[1:] {
			if _, ok := j.files.get(j.node, absPath(dir, p)); !ok {
				fmt.Fprintf(stderr, "chmod: cannot access '%s': No such file or directory\n", p)
				code = 1
			}
		}
		return code
	case "cat":
		_, rest := splitOpts(args[1:], "")
		if len(rest) == 0 {
			rest = []string{"-"}
		}
		code := 0
		for _, p := range rest {
			if p == "-" {
				if _, err := io.Copy(stdout, stdin); err != nil {
					return 1
				}
				continue
			}
			data, ok := j.files.get(j.node, absPath(dir, p))
			if !ok {
				fmt.Fprintf(stderr, "cat: %s: No such file or directory\n", p)
				code = 1
				continue
			}
			_, _ = stdout.Write(data)
		}
		return code
	case "mv", "install", "cp":
		_, rest := splitOpts(args[1:], "mogt")
		if len(rest) != 2 {
			fmt.Fprintf(stderr, "pvesim: %s: only SOURCE DEST is modelled on the node\n", prog)
			return 1
		}
		src, dst := absPath(dir, rest[0]), absPath(dir, rest[1])
		data, ok := j.files.get(j.node, src)
		if !ok {
			fmt.Fprintf(stderr, "%s: cannot stat '%s': No such file or directory\n", prog, rest[0])
			return 1
		}
		j.files.put(j.node, dst, data)
		if prog == "mv" {
			j.files.del(j.node, src)
		}
		return 0
	}
	j.sessionsRefused.Add(1)
	if shell == "sh" {
		fmt.Fprintf(stderr, "sh: %d: %s: not found\n", line, args[0])
	} else {
		fmt.Fprintf(stderr, "bash: line %d: %s: command not found\n", line, args[0])
	}
	return 127
}

func hasOpt(opts map[byte]string, c byte) bool { _, ok := opts[c]; return ok }

// pvesm is the node's pvesm (pve-storage src/PVE/CLI/pvesm.pm): `set STORAGE --content LIST`
// (cmddef set = API2::Storage::Config update; warnings and errors from SetStorageContent)
// and `path VOLID` (prints PVE::Storage::path's result and a newline). Errors exit 255 as
// PVE::CLIHandler's die does. Other subcommands and options are not modelled.
func (j *jumpHost) pvesm(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprintln(stderr, "ERROR: no command specified")
		return 255
	}
	switch args[0] {
	case "set":
		var storage, content string
		have := false
		rest := args[1:]
		for i := 0; i < len(rest); i++ {
			a := rest[i]
			switch {
			case a == "--content" || a == "-content":
				if i+1 < len(rest) {
					i++
					content, have = rest[i], true
				}
			case strings.HasPrefix(a, "--content="):
				content, have = strings.TrimPrefix(a, "--content="), true
			case !strings.HasPrefix(a, "-") && storage == "":
				storage = a
			default:
				fmt.Fprintf(stderr, "pvesim: pvesm set: option %s is not modelled (only --content)\n", a)
				return 255
			}
		}
		if storage == "" || !have {
			fmt.Fprintln(stderr, "pvesim: pvesm set: want STORAGE --content LIST")
			return 255
		}
		warnings, err := j.node.SetStorageContent(storage, strings.Split(content, ","))
		for _, w := range warnings {
			fmt.Fprintln(stderr, w)
		}
		if err != nil {
			fmt.Fprintln(stderr, err)
			return 255
		}
		return 0
	case "path":
		if len(args) != 2 {
			fmt.Fprintln(stderr, "pvesim: pvesm path: want VOLID")
			return 255
		}
		p, err := j.node.VolumePath(args[1])
		if err != nil {
			fmt.Fprintln(stderr, err)
			return 255
		}
		fmt.Fprintln(stdout, p)
		return 0
	}
	fmt.Fprintf(stderr, "pvesim: pvesm %s is not modelled (only set --content and path)\n", args[0])
	return 255
}
