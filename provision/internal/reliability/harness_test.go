//go:build reliability

package reliability

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aimachine/aimachine/fakes/pve"
	"github.com/aimachine/aimachine/fakes/sim"
	"github.com/aimachine/aimachine/internal/toxic"
)

// cliBin is the aimachine binary built once for the package.
var cliBin string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "aimachine-rel-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	cliBin = filepath.Join(dir, "aimachine")
	// -tags testhook: the crash tests pause the CLI at phase boundaries (the shipped binary cannot).
	build := exec.Command("go", "build", "-tags", "testhook", "-o", cliBin, "github.com/aimachine/aimachine/cmd/aimachine")
	build.Stderr = os.Stderr
	if err := build.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "build aimachine:", err)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// harness is one simulator with the CLI pointed at it, optionally through TCP proxies.
type harness struct {
	t       *testing.T
	s       *sim.Sim
	e       sim.Endpoint
	dir     string // the CLI's working directory (reports/)
	catalog string // catalog file with the simulator's key
	env     []string
	// api and jump are the proxies in front of the API and the jump host (nil without proxies).
	api, jump *toxic.Proxy
	// ours are the aimachine VM ids a test may leave (default: 140).
	ours map[int]bool
}

type hopts struct {
	scale   float64
	proxied bool
}

func newHarness(t *testing.T, o hopts) *harness {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	s, err := sim.Start(ctx, sim.Options{TimeScale: o.scale})
	if err != nil {
		t.Fatalf("start simulator: %v", err)
	}
	t.Cleanup(func() { s.Close() })
	h := &harness{t: t, s: s, e: s.Info(), dir: t.TempDir(), ours: map[int]bool{140: true}}
	vars := h.e.Env()
	// A private known_hosts (the guest's key is pinned into it).
	kh, err := os.ReadFile(h.e.KnownHostsFile)
	if err != nil {
		t.Fatal(err)
	}
	if o.proxied {
		if h.api, err = toxic.Start(t.Name()+"-api", hostPort(t, h.e.BaseURL)); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(h.api.Close)
		if h.jump, err = toxic.Start(t.Name()+"-jump", h.e.JumpAddr); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(h.jump.Close)
		vars[sim.EnvEndpoint] = strings.Replace(h.e.BaseURL, hostPort(t, h.e.BaseURL), h.api.Addr, 1)
		vars[sim.EnvJumpHost] = h.e.JumpUser + "@" + h.jump.Addr
		// The jump host's key, pinned under the proxy's port.
		kh = []byte(strings.ReplaceAll(string(kh), "[127.0.0.1]:"+port(h.e.JumpAddr), "[127.0.0.1]:"+port(h.jump.Addr)))
	}
	khFile := filepath.Join(h.dir, "known_hosts")
	if err := os.WriteFile(khFile, kh, 0o600); err != nil {
		t.Fatal(err)
	}
	vars[sim.EnvKnownHosts] = khFile
	h.env = append(os.Environ(), "HOME="+h.dir)
	for k, v := range vars {
		h.env = append(h.env, k+"="+v)
	}
	h.catalog = h.writeCatalog("catalog.yml", nil)
	return h
}

func hostPort(t *testing.T, base string) string {
	t.Helper()
	rest := strings.TrimPrefix(base, "https://")
	hp, _, _ := strings.Cut(rest, "/")
	return hp
}

func port(hp string) string { return hp[strings.LastIndexByte(hp, ':')+1:] }

// writeCatalog writes the test catalog with the simulator's key; edit may change its text.
func (h *harness) writeCatalog(name string, edit func(string) string) string {
	data, err := os.ReadFile("../../testdata/catalog.yml")
	if err != nil {
		h.t.Fatal(err)
	}
	text := strings.ReplaceAll(string(data),
		"ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIEyBEct9p+/3BQlA0E/FkkGXIOT1/sePYm3vsIcQTqBH aimachine-testdata", h.e.SSHPublicKey)
	if edit != nil {
		text = edit(text)
	}
	p := filepath.Join(h.dir, name)
	if err := os.WriteFile(p, []byte(text), 0o600); err != nil {
		h.t.Fatal(err)
	}
	return p
}

// result is one CLI run.
type result struct {
	code           int
	stdout, stderr string
}

func (r result) String() string {
	return fmt.Sprintf("exit %d\nstdout:\n%s\nstderr:\n%s", r.code, r.stdout, r.stderr)
}

// cli runs aimachine with args (the catalog is added) and waits for it.
func (h *harness) cli(ctx context.Context, args ...string) result {
	cmd := h.command(ctx, nil, args...)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	code := 0
	if err != nil {
		ee, ok := err.(*exec.ExitError)
		if !ok {
			h.t.Fatalf("run aimachine %v: %v", args, err)
		}
		code = ee.ExitCode()
	}
	return result{code: code, stdout: out.String(), stderr: errb.String()}
}

// command prepares aimachine with args and extra environment.
func (h *harness) command(ctx context.Context, extra []string, args ...string) *exec.Cmd {
	full := append([]string{}, args...)
	if !hasFlag(args, "--catalog") {
		full = append(full, "--catalog", h.catalog)
	}
	cmd := exec.CommandContext(ctx, cliBin, full...)
	cmd.Dir = h.dir
	cmd.Env = append(append([]string{}, h.env...), extra...)
	return cmd
}

func hasFlag(args []string, f string) bool {
	for _, a := range args {
		if a == f {
			return true
		}
	}
	return false
}

const vmName = "vm-llm-aimachine"

func (h *harness) deploy(ctx context.Context, extra ...string) result {
	return h.cli(ctx, append([]string{"deploy", "--vm", vmName}, extra...)...)
}

func (h *harness) verify(ctx context.Context) result {
	return h.cli(ctx, "verify", "--vm", vmName)
}

// snapshot is the simulator's state.
func (h *harness) snapshot() pve.Snapshot { return h.s.API().Snapshot() }

// checkClean asserts the invariants every outcome must keep: at most one VM per id and name
// (no duplicates), every VM either the catalog's VM 140 or one that was there before (no
// orphans), no config lock left, and no PCI reservation held by a VM that does not run.
func (h *harness) checkClean(t *testing.T) {
	t.Helper()
	snap := h.snapshot()
	names := map[string]int{}
	for _, v := range snap.VMs {
		names[v.Config["name"]]++
		if l := v.Config["lock"]; l != "" {
			t.Errorf("VM %d left locked (%s)", v.VMID, l)
		}
		if !h.ours[v.VMID] && strings.Contains(v.Config["tags"], "aimachine") {
			t.Errorf("orphan aimachine VM %d (%s)", v.VMID, v.Config["name"])
		}
	}
	for n, c := range names {
		if c > 1 {
			t.Errorf("%d VMs named %q", c, n)
		}
	}
	exists := map[int]bool{}
	for _, v := range snap.VMs {
		exists[v.VMID] = true
	}
	for dev, vmid := range snap.Reservations {
		// A stopped VM's reservation is PVE's "leftover" one, taken over by the next start
		// (qemu-server PCI.pm reserve_pci_usage); one of a VM that is gone has leaked.
		if !exists[vmid] {
			t.Errorf("PCI reservation of %s leaked to VM %d, which does not exist", dev, vmid)
		}
	}
}

// checkReservations asserts that every PCI reservation belongs to a running VM.
func (h *harness) checkReservations(t *testing.T) {
	t.Helper()
	snap := h.snapshot()
	running := map[int]bool{}
	for _, v := range snap.VMs {
		running[v.VMID] = v.Status == "running"
	}
	for dev, vmid := range snap.Reservations {
		if !running[vmid] {
			t.Errorf("PCI reservation of %s held for VM %d, which does not run", dev, vmid)
		}
	}
}

// vm returns VM id's snapshot (nil when absent).
func (h *harness) vm(id int) *pve.VMSnapshot {
	for _, v := range h.snapshot().VMs {
		if v.VMID == id {
			return &v
		}
	}
	return nil
}

// converges asserts that a deploy now succeeds and verify passes, and the state is clean.
func (h *harness) converges(t *testing.T, ctx context.Context) {
	t.Helper()
	if r := h.deploy(ctx); r.code != 0 {
		t.Fatalf("re-run after the fault cleared did not converge:\n%s", r)
	}
	if r := h.verify(ctx); r.code != 0 {
		t.Fatalf("verify after the re-run:\n%s", r)
	}
	h.checkClean(t)
	h.checkReservations(t)
	if v := h.vm(140); v == nil || v.Status != "running" {
		t.Fatalf("VM 140 after the re-run: %+v", v)
	}
}

// locked serialises the stderr of concurrent runs in logs.
var logMu sync.Mutex

func logRun(t *testing.T, what string, r result) {
	logMu.Lock()
	defer logMu.Unlock()
	t.Logf("%s: %s", what, r)
}
