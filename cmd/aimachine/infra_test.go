package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	fakepve "github.com/aimachine/aimachine/fakes/pve"
)

const testCatalog = "../../provision/testdata/catalog.yml"

// fakeHost starts the fake Proxmox API with built-in guests and points the CLI's
// environment at it (root@pam password and the token; the password login wins).
func fakeHost(t *testing.T, extra map[string]string, opts ...fakepve.Option) *fakepve.Server {
	t.Helper()
	srv := fakepve.New(append([]fakepve.Option{fakepve.WithAuthDelay(0), fakepve.WithTimeScale(0), fakepve.WithGuestFactory(fakepve.NewStaticGuestFactory())}, opts...)...)
	ts := srv.StartTLS()
	t.Cleanup(ts.Close)
	env := map[string]string{
		"PROXMOX_VE_ENDPOINT":    ts.URL + "/",
		"PROXMOX_VE_API_TOKEN":   fakepve.DefaultTokenID + "=" + fakepve.DefaultTokenSecret,
		"PROXMOX_VE_USERNAME":    "root@pam",
		"PROXMOX_VE_PASSWORD":    fakepve.DefaultRootPassword,
		"PROXMOX_VE_FINGERPRINT": srv.Fingerprint(),
		"AIMACHINE_KNOWN_HOSTS":  filepath.Join(t.TempDir(), "known_hosts"),
	}
	for k, v := range extra {
		if v == "" {
			delete(env, k)
		} else {
			env[k] = v
		}
	}
	old := getenv
	getenv = func(k string) string { return env[k] }
	t.Cleanup(func() { getenv = old })
	return srv
}

func runInfraCLI(args ...string) (int, string, string) {
	var out, errOut bytes.Buffer
	code := run(context.Background(), args, &out, &errOut)
	return code, out.String(), errOut.String()
}

func TestDeployPlanDestroyCLI(t *testing.T) {
	srv := fakeHost(t, nil)
	code, out, errOut := runInfraCLI("plan", "--vm", "vm-llm-aimachine", "--catalog", testCatalog, "--infra-only", "--detailed-exitcode")
	if code != 2 || !strings.Contains(out, "+ create") || !strings.Contains(out, "2 to change") {
		t.Fatalf("plan: exit %d\nstdout:\n%s\nstderr:\n%s", code, out, errOut)
	}

	code, out, errOut = runInfraCLI("deploy", "--vm", "vm-llm-aimachine", "--catalog", testCatalog, "--infra-only")
	if code != 0 {
		t.Fatalf("deploy: exit %d\n%s", code, errOut)
	}
	for _, want := range []string{"✓ preflight", "✓ create VM 140 [changed]", "✓ start VM 140 [changed]", "✓ pin SSH host key [changed]", "↷ guest phase: infrastructure only", "changed, "} {
		if !strings.Contains(errOut, want) {
			t.Errorf("deploy stderr lacks %q:\n%s", want, errOut)
		}
	}
	if !strings.Contains(out, "192.168.0.140") {
		t.Errorf("deploy stdout = %q", out)
	}

	before := changing(srv.Stats())
	code, _, errOut = runInfraCLI("deploy", "--vm", "vm-llm-aimachine", "--catalog", testCatalog, "--infra-only")
	if code != 0 || !strings.Contains(errOut, "0 changed, ") {
		t.Fatalf("second deploy: exit %d\n%s", code, errOut)
	}
	if d := changing(srv.Stats()) - before; d != 0 {
		t.Fatalf("second deploy made %d mutating calls", d)
	}
	code, out, _ = runInfraCLI("plan", "vm-llm-aimachine", "--catalog", testCatalog, "--infra-only", "--detailed-exitcode")
	if code != 0 || !strings.Contains(out, "= none") || !strings.Contains(out, "0 to change") {
		t.Fatalf("plan after deploy: exit %d\n%s", code, out)
	}

	before = changing(srv.Stats())
	if code, _, errOut = runInfraCLI("destroy", "--vm", "vm-llm-aimachine", "--catalog", testCatalog); code != 2 || !strings.Contains(errOut, "--yes") || !strings.Contains(errOut, "hint:") {
		t.Fatalf("destroy without --yes: exit %d %s", code, errOut)
	}
	if d := changing(srv.Stats()) - before; d != 0 {
		t.Fatalf("destroy without --yes made %d mutating calls", d)
	}
	code, out, errOut = runInfraCLI("destroy", "--vm", "vm-llm-aimachine", "--catalog", testCatalog, "--yes")
	if code != 0 || !strings.Contains(out, "VM 140 deleted") {
		t.Fatalf("destroy: exit %d\n%s\n%s", code, out, errOut)
	}
}

func TestDeployFailureExits1WithHint(t *testing.T) {
	srv := fakeHost(t, nil)
	if err := srv.SetIOMMU("pve", false); err != nil {
		t.Fatal(err)
	}
	code, _, errOut := runInfraCLI("deploy", "--vm", "vm-llm-aimachine", "--catalog", testCatalog, "--infra-only")
	if code != 1 || !strings.Contains(errOut, "✗ ") || !strings.Contains(errOut, "hint: enable the IOMMU") {
		t.Fatalf("exit %d\n%s", code, errOut)
	}
	// The failed task is printed once, with its details, not once bare and once with the error.
	if n := strings.Count(errOut, "✗ "); n != 1 {
		t.Fatalf("want exactly one ✗ line, got %d:\n%s", n, errOut)
	}
}

// destroy of a VM without the ownership tag is refused in those words, once, with a hint,
// and deletes nothing.
func TestDestroyOfAForeignVMIsRefused(t *testing.T) {
	srv := fakeHost(t, nil, fakepve.WithTopology(func() fakepve.Topology {
		tp := fakepve.DefaultTopology()
		tp.VMs = append(tp.VMs, fakepve.VMSpec{Node: "pve", VMID: 140, Config: map[string]string{
			"name": "someone-elses", "memory": "4096", "cores": "2", "ostype": "l26", "scsi0": "local-lvm:vm-140-disk-0,size=32G"}})
		return tp
	}()))
	code, _, errOut := runInfraCLI("destroy", "--vm", "vm-llm-aimachine", "--catalog", testCatalog, "--yes")
	want := `✗ destroy VM 140: refused, it is not managed by aimachine (no 'aimachine' tag)`
	if code != 1 || !strings.Contains(errOut, want) || !strings.Contains(errOut, "hint: ") || strings.Contains(errOut, "take over") {
		t.Fatalf("exit %d, want %q with a hint:\n%s", code, want, errOut)
	}
	if n := strings.Count(errOut, "✗ "); n != 1 {
		t.Fatalf("want exactly one ✗ line, got %d:\n%s", n, errOut)
	}
	if m := changing(srv.Stats()); m != 0 {
		t.Fatalf("a refused destroy made %d mutating calls", m)
	}
}

func TestMissingEnvironmentIsNamed(t *testing.T) {
	fakeHost(t, map[string]string{"PROXMOX_VE_ENDPOINT": "", "PROXMOX_VE_API_TOKEN": "", "PROXMOX_VE_USERNAME": "", "PROXMOX_VE_PASSWORD": ""})
	code, _, errOut := runInfraCLI("plan", "--vm", "vm-llm-aimachine", "--catalog", testCatalog)
	if code != 1 || !strings.Contains(errOut, "missing environment: PROXMOX_VE_ENDPOINT, PROXMOX_VE_API_TOKEN") {
		t.Fatalf("exit %d\n%s", code, errOut)
	}
}

func TestSimulatorModeRefusesARealEndpoint(t *testing.T) {
	fakeHost(t, map[string]string{"AIMACHINE_SIMULATOR": "1", "PROXMOX_VE_ENDPOINT": "https://192.168.0.10:8006/"})
	code, _, errOut := runInfraCLI("plan", "--vm", "vm-llm-aimachine", "--catalog", testCatalog)
	if code != 1 || !strings.Contains(errOut, "not a loopback address") {
		t.Fatalf("exit %d\n%s", code, errOut)
	}
}

func TestVerboseOutputHasNoSecrets(t *testing.T) {
	fakeHost(t, nil)
	_, out1, err1 := runInfraCLI("deploy", "--vm", "vm-llm-aimachine", "--catalog", testCatalog, "--infra-only", "-v")
	fakeHost(t, map[string]string{"PROXMOX_VE_USERNAME": "", "PROXMOX_VE_PASSWORD": ""}) // token: raw hostpci refused
	_, out2, err2 := runInfraCLI("deploy", "--vm", "vm-llm-aimachine", "--catalog", testCatalog, "--infra-only", "-v")
	all := out1 + err1 + out2 + err2
	if !strings.Contains(all, "level=DEBUG") || !strings.Contains(err2, "root@pam") {
		t.Fatalf("the runs did not produce the expected logs and errors:\n%s", all)
	}
	for _, s := range []string{fakepve.DefaultTokenSecret, fakepve.DefaultRootPassword} {
		if strings.Contains(all, s) {
			t.Fatalf("secret %q printed", s)
		}
	}
}

// cancelOn is stderr that cancels the command's context once it has printed marker: Ctrl-C
// at a known point of the run.
type cancelOn struct {
	bytes.Buffer
	marker string
	cancel context.CancelFunc
}

func (w *cancelOn) Write(p []byte) (int, error) {
	n, err := w.Buffer.Write(p)
	if strings.Contains(w.String(), w.marker) {
		w.cancel()
	}
	return n, err
}

// Ctrl-C after this run created the VM: deploy rolls the VM back on a fresh context, says it
// was interrupted, and exits 1; a re-run converges.
func TestDeployInterruptedRollsBackAndExits1(t *testing.T) {
	srv := fakeHost(t, nil)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	errb := &cancelOn{marker: "✓ create VM 140 [changed]", cancel: cancel}
	var out bytes.Buffer
	code := run(ctx, []string{"deploy", "--vm", "vm-llm-aimachine", "--catalog", testCatalog, "--infra-only"}, &out, errb)
	stderr := errb.String()
	t.Logf("stderr:\n%s", stderr)
	if code != 1 || !strings.Contains(stderr, "✗ interrupted") || !strings.Contains(stderr, "context canceled") {
		t.Fatalf("exit %d, want 1 with an interrupted line", code)
	}
	if !strings.Contains(stderr, "✓ roll back VM 140 [changed]") || !strings.Contains(stderr, "rolled back: VM 140 created by run") {
		t.Fatalf("the VM this run created was not rolled back")
	}
	if out.Len() != 0 {
		t.Errorf("an interrupted deploy printed a result on stdout: %q", out.String())
	}
	if code, out, _ := runInfraCLI("plan", "--vm", "vm-llm-aimachine", "--catalog", testCatalog); code != 0 || !strings.Contains(out, "create") {
		t.Fatalf("plan after the rollback: exit %d\n%s", code, out)
	}
	before := changing(srv.Stats())
	if code, _, errOut := runInfraCLI("deploy", "--vm", "vm-llm-aimachine", "--catalog", testCatalog, "--infra-only"); code != 0 || changing(srv.Stats()) == before {
		t.Fatalf("re-run after the interruption: exit %d\n%s", code, errOut)
	}
}

var _ = os.Getenv

// changing counts the mutating API calls other than the run lease's own writes: the lease is
// the only thing aimachine writes with the synchronous config PUT (provision/internal/lease).
func changing(st fakepve.Stats) int {
	return st.Mutating - st.ByRoute["PUT /nodes/{node}/qemu/{vmid}/config"]
}

// --insecure with a pinned fingerprint is refused before anything is sent; insecure mode
// alone warns on every run.
func TestInsecureIsRefusedWithAPinAndWarnsWithout(t *testing.T) {
	srv := fakeHost(t, nil)
	code, _, errOut := runInfraCLI("plan", "--vm", "vm-llm-aimachine", "--catalog", testCatalog, "--insecure")
	if code != 1 || !strings.Contains(errOut, "TLS verification is configured (PROXMOX_VE_FINGERPRINT) and insecure mode") {
		t.Fatalf("exit %d\n%s", code, errOut)
	}
	if n := srv.Stats().Total; n != 0 {
		t.Errorf("%d requests reached the API", n)
	}
	fakeHost(t, map[string]string{"PROXMOX_VE_FINGERPRINT": "", "PROXMOX_VE_INSECURE": "true"})
	for i := 0; i < 2; i++ {
		code, _, errOut = runInfraCLI("plan", "--vm", "vm-llm-aimachine", "--catalog", testCatalog)
		if code != 0 || !strings.Contains(errOut, "warning: TLS verification of the Proxmox API is off") {
			t.Fatalf("run %d: exit %d\n%s", i, code, errOut)
		}
	}
}
