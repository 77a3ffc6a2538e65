package sim

import (
	"encoding/binary"
	"fmt"
	"io"
	"regexp"
	"strings"

	"golang.org/x/crypto/ssh"
)

// nodeOps is what the simulated node's root shell changes (the fake API's state).
type nodeOps interface {
	SetStorageContent(storage string, content []string) (warnings []string, err error)
	VolumePath(volid string) (string, error)
	WriteNodeFile(path string, data []byte) error
}

// The commands the node shell answers: those of `aimachine prepare --node-ssh` and nothing
// else: pvesm set STORAGE --content LIST, pvesm path VOLID, and provision/guest's file write
// (sh -c 'set -e; mkdir -p D; rm -f T; : > T; chmod M T; cat > T; mv -f T P').
var (
	rePvesmSet  = regexp.MustCompile(`^pvesm set '?([a-zA-Z0-9._-]+)'? --content '?([a-z,]+)'?$`)
	rePvesmPath = regexp.MustCompile(`^pvesm path '?([^' ]+)'?$`)
	rePut       = regexp.MustCompile(`^sh -c 'set -e; mkdir -p \S+; rm -f \S+; : > \S+; chmod [0-7]+ \S+; cat > \S+; mv -f \S+ (\S+)'$`)
)

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
			code := j.runNode(p.Cmd, ch, ch.Stderr())
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

func shUnquote(s string) string { return strings.ReplaceAll(strings.Trim(s, "'"), `'\''`, "'") }

// runNode runs one command of the simulated node's root shell and returns its exit code.
func (j *jumpHost) runNode(cmd string, stdin io.Reader, stderr io.Writer) int {
	cmd = strings.TrimSpace(cmd)
	j.log.Info("node shell", "cmd", cmd)
	if j.node == nil {
		fmt.Fprintln(stderr, "pvesim: no node state")
		return 1
	}
	if m := rePvesmSet.FindStringSubmatch(cmd); m != nil {
		warnings, err := j.node.SetStorageContent(m[1], strings.Split(m[2], ","))
		for _, w := range warnings {
			fmt.Fprintln(stderr, w)
		}
		if err != nil {
			fmt.Fprintln(stderr, err)
			return 255
		}
		return 0
	}
	if m := rePvesmPath.FindStringSubmatch(cmd); m != nil {
		p, err := j.node.VolumePath(shUnquote(m[1]))
		if err != nil {
			fmt.Fprintln(stderr, err)
			return 255
		}
		fmt.Fprintln(stdoutOf(stdin), p)
		return 0
	}
	if m := rePut.FindStringSubmatch(cmd); m != nil {
		data, err := io.ReadAll(stdin)
		if err != nil {
			return 1
		}
		if err := j.node.WriteNodeFile(shUnquote(m[1]), data); err != nil {
			fmt.Fprintln(stderr, "sh: 1:", err)
			return 1
		}
		return 0
	}
	j.sessionsRefused.Add(1)
	name, _, _ := strings.Cut(cmd, " ")
	fmt.Fprintf(stderr, "bash: line 1: %s: command not found (the simulated node runs only pvesm set/path and file writes)\n", name)
	return 127
}

// stdoutOf: the channel is both stdin and stdout.
func stdoutOf(r io.Reader) io.Writer { return r.(io.Writer) }
