package guest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"

	"github.com/aimachine/aimachine/fakes/pve"
)

// agent is the QEMU guest agent of a running guest (pve.Agent). It exists only while
// qemu-guest-agent is installed and its service is active (see Guest.Agent).
type agent struct{ g *Guest }

var _ pve.Agent = (*agent)(nil)

type agentExec struct {
	done   bool
	code   int
	stdout bytes.Buffer
	stderr bytes.Buffer
}

type agentState struct {
	mu    sync.Mutex
	execs map[int]*agentExec
}

func (a *agent) state() *agentState { return &a.g.agentSt }

func (a *agent) Ready() bool { return a.g.sys.agentRunning() }

// Exec runs argv as root (guest-exec); the program is looked up in PATH like execvp.
func (a *agent) Exec(argv []string, stdin []byte) (int, error) {
	if !a.Ready() {
		return 0, errors.New("QEMU guest agent is not running")
	}
	if len(argv) == 0 {
		return 0, errors.New("guest-exec: path is required")
	}
	g := a.g
	g.f.count(g.id.VMID, func(s *GuestStats) { s.AgentCommands++ })
	root, err := g.fs.lookupUser("root")
	if err != nil {
		return 0, err
	}
	pid := g.sys.pid()
	ex := &agentExec{}
	st := a.state()
	st.mu.Lock()
	st.execs[pid] = ex
	st.mu.Unlock()
	g.mu.Lock()
	ctx := g.bootCtx
	g.mu.Unlock()
	if ctx == nil {
		ctx = context.Background()
	}
	var stdout, stderr bytes.Buffer
	go func() {
		p := &proc{g: g, ctx: ctx, user: root, env: rootEnv(), dir: "/", stdin: bytes.NewReader(stdin), stdout: &stdout, stderr: &stderr}
		if _, ok := g.lookPath(argv[0], securePath); !ok {
			fmt.Fprintf(&stderr, "Failed to execute child process “%s” (No such file or directory)\n", argv[0])
			st.mu.Lock()
			ex.done, ex.code = true, 1
			st.mu.Unlock()
			return
		}
		code := g.execArgs(p, argv)
		st.mu.Lock()
		ex.done, ex.code = true, code
		ex.stdout.Write(stdout.Bytes())
		ex.stderr.Write(stderr.Bytes())
		st.mu.Unlock()
	}()
	return pid, nil
}

// ExecStatus is guest-exec-status.
func (a *agent) ExecStatus(pid int) (pve.ExecStatus, error) {
	st := a.state()
	st.mu.Lock()
	defer st.mu.Unlock()
	ex := st.execs[pid]
	if ex == nil {
		return pve.ExecStatus{}, fmt.Errorf("Invalid parameter 'pid'")
	}
	if !ex.done {
		return pve.ExecStatus{Exited: false}, nil
	}
	return pve.ExecStatus{Exited: true, ExitCode: ex.code, Stdout: ex.stdout.Bytes(), Stderr: ex.stderr.Bytes()}, nil
}

// FileRead reads a guest file (guest-file-read, as root).
func (a *agent) FileRead(p string) ([]byte, error) {
	if !a.Ready() {
		return nil, errors.New("QEMU guest agent is not running")
	}
	b, err := a.g.fs.readFile(p)
	if err != nil {
		return nil, fmt.Errorf("Failed to open file '%s': No such file or directory", p)
	}
	return b, nil
}

// Interfaces lists lo and eth0 with the cloud-init address.
func (a *agent) Interfaces() []pve.NetInterface {
	g := a.g
	g.mu.Lock()
	ip, pfx, mac := g.ip, g.prefix, g.mac
	g.mu.Unlock()
	return []pve.NetInterface{
		{Name: "lo", HardwareAddress: "00:00:00:00:00:00", IPs: []pve.IPAddress{{Type: "ipv4", Addr: "127.0.0.1", Prefix: 8}, {Type: "ipv6", Addr: "::1", Prefix: 128}}},
		{Name: "eth0", HardwareAddress: mac, IPs: []pve.IPAddress{{Type: "ipv4", Addr: ip, Prefix: pfx}, {Type: "ipv6", Addr: macToLinkLocal(mac), Prefix: 64}}},
	}
}

func macToLinkLocal(mac string) string {
	parts := strings.Split(mac, ":")
	if len(parts) != 6 {
		return "fe80::1"
	}
	var b [6]byte
	for i, p := range parts {
		fmt.Sscanf(p, "%02x", &b[i])
	}
	b[0] ^= 2
	return fmt.Sprintf("fe80::%02x%02x:%02xff:fe%02x:%02x%02x", b[0], b[1], b[2], b[3], b[4], b[5])
}

// OSInfo is guest-get-osinfo.
func (a *agent) OSInfo() map[string]string {
	return map[string]string{
		"id": "ubuntu", "name": "Ubuntu", "pretty-name": osPretty, "version": "24.04.3 LTS (Noble Numbat)", "version-id": "24.04",
		"kernel-release": kernelRelease, "kernel-version": kernelVersion, "machine": "x86_64",
	}
}
