package provision

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"golang.org/x/crypto/ssh"

	fakepve "github.com/aimachine/aimachine/fakes/pve"
)

// testGuests is a minimal guest factory for the infrastructure tests: every VM incarnation
// gets a fresh ed25519 host key (a re-created VM has a new key, as in real life), an agent
// that answers once the VM runs, `cloud-init status --wait` exiting cloudInitExit, and the
// host key readable at /etc/ssh/ssh_host_ed25519_key.pub.
type testGuests struct {
	mu            sync.Mutex
	cloudInitExit int
	noAgent       bool
	guests        map[int]*testGuest
}

func newTestGuests() *testGuests { return &testGuests{guests: map[int]*testGuest{}} }

func (f *testGuests) NewGuest(id fakepve.VMIdentity, host fakepve.Host) (fakepve.Guest, error) {
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return nil, err
	}
	signer, err := ssh.NewSignerFromKey(priv)
	if err != nil {
		return nil, err
	}
	g := &testGuest{f: f, id: id, hostKey: strings.TrimSpace(string(ssh.MarshalAuthorizedKey(signer.PublicKey()))) + " root@vm\n"}
	f.mu.Lock()
	f.guests[id.VMID] = g
	f.mu.Unlock()
	return g, nil
}

func (f *testGuests) guest(vmid int) *testGuest {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.guests[vmid]
}

type testGuest struct {
	f       *testGuests
	id      fakepve.VMIdentity
	mu      sync.Mutex
	on      bool
	boot    fakepve.BootInfo
	hostKey string
	execs   []fakepve.ExecStatus
}

func (g *testGuest) PowerOn(_ context.Context, b fakepve.BootInfo) error {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.on, g.boot = true, b
	return nil
}
func (g *testGuest) PowerOff(bool) error { g.mu.Lock(); g.on = false; g.mu.Unlock(); return nil }
func (g *testGuest) Reboot() error       { return nil }
func (g *testGuest) Destroy() error      { return g.PowerOff(false) }
func (g *testGuest) Agent() fakepve.Agent {
	g.mu.Lock()
	defer g.mu.Unlock()
	if !g.on || g.f.noAgent {
		return nil
	}
	return (*testAgent)(g)
}

type testAgent testGuest

func (a *testAgent) Ready() bool { return true }
func (a *testAgent) Exec(argv []string, stdin []byte) (int, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	st := fakepve.ExecStatus{Exited: true}
	switch strings.Join(argv, " ") {
	case "cloud-init status --wait":
		st.ExitCode = a.f.cloudInitExit
		st.Stdout = []byte("\nstatus: done\n")
		if st.ExitCode == 1 {
			st.Stdout = []byte("\nstatus: error\n")
		}
	case "cat /etc/ssh/ssh_host_ed25519_key.pub":
		st.Stdout = []byte(a.hostKey)
	default:
		st.ExitCode = 127
		st.Stderr = []byte(argv[0] + ": command not found\n")
	}
	a.execs = append(a.execs, st)
	return len(a.execs), nil
}
func (a *testAgent) ExecStatus(pid int) (fakepve.ExecStatus, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if pid < 1 || pid > len(a.execs) {
		return fakepve.ExecStatus{}, fmt.Errorf("no such pid %d", pid)
	}
	return a.execs[pid-1], nil
}
func (a *testAgent) FileRead(path string) ([]byte, error) {
	if path == "/etc/ssh/ssh_host_ed25519_key.pub" {
		return []byte(a.hostKey), nil
	}
	return nil, errors.New("No such file or directory")
}
func (a *testAgent) Interfaces() []fakepve.NetInterface {
	ip := strings.TrimPrefix(strings.Split(a.boot.CloudInit.IPConfig0, ",")[0], "ip=")
	addr, prefix, _ := strings.Cut(ip, "/")
	var n int
	fmt.Sscanf(prefix, "%d", &n)
	return []fakepve.NetInterface{
		{Name: "lo", IPs: []fakepve.IPAddress{{Type: "ipv4", Addr: "127.0.0.1", Prefix: 8}}},
		{Name: "eth0", HardwareAddress: "bc:24:11:00:00:01", IPs: []fakepve.IPAddress{{Type: "ipv4", Addr: addr, Prefix: n}}},
	}
}
func (a *testAgent) OSInfo() map[string]string {
	return map[string]string{"id": "ubuntu", "version-id": "24.04"}
}

var _ = time.Second
