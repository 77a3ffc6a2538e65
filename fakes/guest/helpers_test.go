package guest

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"errors"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/aimachine/aimachine/fakes/pve"
)

type fakeHost struct {
	mu  sync.Mutex
	off []int
}

func (h *fakeHost) GuestPoweredOff(vmid int) {
	h.mu.Lock()
	h.off = append(h.off, vmid)
	h.mu.Unlock()
}
func (h *fakeHost) Scale(d time.Duration) time.Duration { return 0 }

func (h *fakeHost) poweredOff() []int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return append([]int{}, h.off...)
}

const vendorQGA = "#cloud-config\npackages:\n  - qemu-guest-agent\nruncmd:\n  - [systemctl, enable, --now, qemu-guest-agent]\n"

// rtx5060ti is the passed-through GPU (both functions) as the fake PVE resolves it.
func rtx5060ti() []pve.PCIDevice {
	return []pve.PCIDevice{
		{ID: "0000:01:00.0", Class: "0x030000", Vendor: "0x10de", Device: "0x2d04", SubsystemVendor: "0x1043", SubsystemDevice: "0x8a11", IOMMUGroup: 14, MemoryMiB: 16311, Model: "NVIDIA GeForce RTX 5060 Ti"},
		{ID: "0000:01:00.1", Class: "0x040300", Vendor: "0x10de", Device: "0x22eb", IOMMUGroup: 14},
	}
}

type testVM struct {
	t      *testing.T
	f      *Factory
	g      *Guest
	signer ssh.Signer
	boot   pve.BootInfo
}

func bootInfo(pub string) pve.BootInfo {
	return pve.BootInfo{
		Name: "vm-llm-aimachine", Machine: "q35", BIOS: "ovmf", CPU: "host", Cores: 32, MemoryMiB: 51200,
		GPUs: rtx5060ti(),
		CloudInit: pve.CloudInitData{Hostname: "vm-llm-aimachine", User: "ubuntu", SSHKeys: []string{pub},
			IPConfig0: "ip=192.168.0.140/24,gw=192.168.0.1", Nameserver: "192.168.0.1", VendorData: vendorQGA},
		Config: map[string]string{"agent": "1", "hostpci0": "mapping=rtx5060ti,pcie=1", "net0": "virtio=BC:24:11:AA:BB:CC,bridge=vmbr0",
			"efidisk0": "local-lvm:vm-140-disk-0,efitype=4m,pre-enrolled-keys=0", "scsi0": "local-lvm:vm-140-disk-1,size=500G"},
	}
}

// newVM creates and boots VM 140; mod may change the boot info before power-on.
func newVM(t *testing.T, scale float64, mod func(*pve.BootInfo), opts ...Option) *testVM {
	t.Helper()
	_, priv, _ := ed25519.GenerateKey(rand.Reader)
	signer, err := ssh.NewSignerFromKey(priv)
	if err != nil {
		t.Fatal(err)
	}
	f := NewFactory(append([]Option{WithTimeScale(scale), WithStateDir(t.TempDir())}, opts...)...)
	t.Cleanup(func() { f.Close() })
	pg, err := f.NewGuest(pve.VMIdentity{Node: "pve", VMID: 140, Incarnation: "a1"}, &fakeHost{})
	if err != nil {
		t.Fatal(err)
	}
	b := bootInfo(strings.TrimSpace(string(ssh.MarshalAuthorizedKey(signer.PublicKey()))) + " deploy@aimachine")
	if mod != nil {
		mod(&b)
	}
	vm := &testVM{t: t, f: f, g: pg.(*Guest), signer: signer, boot: b}
	if err := vm.g.PowerOn(context.Background(), b); err != nil {
		t.Fatal(err)
	}
	return vm
}

func (vm *testVM) ctx() context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	vm.t.Cleanup(cancel)
	return ctx
}

// ready waits for sshd and cloud-init.
func (vm *testVM) ready() *testVM {
	vm.t.Helper()
	if err := vm.g.WaitCloudInit(vm.ctx()); err != nil {
		vm.t.Fatalf("wait cloud-init: %v", err)
	}
	return vm
}

func (vm *testVM) dial(user string, signer ssh.Signer) (*ssh.Client, error) {
	conn, err := vm.f.DialGuest(vm.ctx(), "192.168.0.140:22")
	if err != nil {
		return nil, err
	}
	keys := vm.g.HostKeys()
	cfg := &ssh.ClientConfig{User: user, Auth: []ssh.AuthMethod{ssh.PublicKeys(signer)}, Timeout: 10 * time.Second}
	cfg.HostKeyCallback = func(_ string, _ net.Addr, key ssh.PublicKey) error {
		for _, k := range keys {
			if bytes.Equal(k.Marshal(), key.Marshal()) {
				return nil
			}
		}
		return errors.New("host key mismatch")
	}
	c, chans, reqs, err := ssh.NewClientConn(conn, "192.168.0.140:22", cfg)
	if err != nil {
		conn.Close()
		return nil, err
	}
	return ssh.NewClient(c, chans, reqs), nil
}

func (vm *testVM) client() *ssh.Client {
	vm.t.Helper()
	c, err := vm.dial("ubuntu", vm.signer)
	if err != nil {
		vm.t.Fatalf("ssh: %v", err)
	}
	vm.t.Cleanup(func() { c.Close() })
	return c
}

type result struct {
	stdout, stderr string
	code           int
}

func runOn(t *testing.T, c *ssh.Client, cmd string, stdin string) result {
	t.Helper()
	s, err := c.NewSession()
	if err != nil {
		t.Fatalf("session: %v", err)
	}
	defer s.Close()
	var o, e bytes.Buffer
	s.Stdout, s.Stderr = &o, &e
	if stdin != "" {
		s.Stdin = strings.NewReader(stdin)
	}
	err = s.Run(cmd)
	code := 0
	var ee *ssh.ExitError
	switch {
	case errors.As(err, &ee):
		code = ee.ExitStatus()
	case err != nil:
		t.Fatalf("run %q: %v (stderr %q)", cmd, err, e.String())
	}
	return result{o.String(), e.String(), code}
}

// sh runs a command over SSH as the cloud-init user.
func (vm *testVM) sh(c *ssh.Client, cmd string) result {
	vm.t.Helper()
	return runOn(vm.t, c, cmd, "")
}

// must runs a command and fails the test unless it exits 0.
func (vm *testVM) must(c *ssh.Client, cmd string) string {
	vm.t.Helper()
	r := runOn(vm.t, c, cmd, "")
	if r.code != 0 {
		vm.t.Fatalf("%q exited %d\nstdout: %s\nstderr: %s", cmd, r.code, r.stdout, r.stderr)
	}
	return r.stdout
}

// runErr runs a command and returns session.Run's error (nil = exit 0).
func runErr(c *ssh.Client, cmd string) error {
	s, err := c.NewSession()
	if err != nil {
		return err
	}
	defer s.Close()
	return s.Run(cmd)
}

func mustEd25519() ed25519.PrivateKey {
	_, k, _ := ed25519.GenerateKey(rand.Reader)
	return k
}

func ed25519GenerateKey() (ed25519.PublicKey, ed25519.PrivateKey, error) {
	return ed25519.GenerateKey(rand.Reader)
}

// newVMWithSigner boots VM 140 with the given key in cloud-init sshkeys.
func newVMWithSigner(t *testing.T, signer ssh.Signer) *testVM {
	vm := newVM(t, 0, func(b *pve.BootInfo) {
		b.CloudInit.SSHKeys = []string{strings.TrimSpace(string(ssh.MarshalAuthorizedKey(signer.PublicKey()))) + " openssh@test"}
	})
	vm.signer = signer
	return vm
}
