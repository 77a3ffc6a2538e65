package readiness

import (
	"context"
	"errors"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/aimachine/aimachine/catalog"
	"github.com/aimachine/aimachine/fakes/sim"
	"github.com/aimachine/aimachine/provision"
	"github.com/aimachine/aimachine/provision/pve"
)

const (
	bareToken = "aimachine@pve!deploy=0b7a9c1e-bare-host-test-token-secret" // fakes/sim/testdata/bare-host.yaml
)

type bare struct {
	s   *sim.Sim
	o   provision.ConnOptions
	cat *catalog.Catalog
	vms []*catalog.VM
}

func startBare(t *testing.T) *bare {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	s, err := sim.Start(ctx, sim.Options{TopologyFile: "../../fakes/sim/testdata/bare-host.yaml"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close() })
	e := s.Info()
	cat, err := catalog.LoadValid("testdata/catalog.yml")
	if err != nil {
		t.Fatal(err)
	}
	vm, _ := cat.VM("vm-llm-aimachine")
	return &bare{s: s, cat: cat, vms: []*catalog.VM{vm},
		o: provision.ConnOptions{Endpoint: e.BaseURL, APIToken: bareToken, CAFile: e.CAFile, Simulator: true}}
}

func ctxT(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	t.Cleanup(cancel)
	return ctx
}

func failedNames(r *Report) []string {
	var out []string
	for _, c := range r.Failed() {
		out = append(out, c.Name)
	}
	return out
}

func TestDoctorOnBareHostNamesEveryProblemAndChangesNothing(t *testing.T) {
	b := startBare(t)
	ctx := ctxT(t)
	rep, err := Doctor(ctx, b.o, b.cat, b.vms)
	if err != nil {
		t.Fatal(err)
	}
	if rep.OK() {
		t.Fatal("doctor passed on the bare host")
	}
	for _, c := range rep.Checks {
		t.Logf("%s %s: %s | %s", c.Status.Mark(), c.Name, c.Detail, c.Fix)
	}
	got := strings.Join(failedNames(rep), "\n")
	for _, want := range []string{
		"cloud image local:import/noble-server-cloudimg-amd64.qcow2 present",
		"storage local holds the vendor snippet (content snippets)",
		"vendor snippet local:snippets/aimachine-vendor.yaml present",
		"PCI mapping rtx5060ti exists",
		"privilege SDN.Use on /sdn/zones/localnetwork/vmbr0",
	} {
		if !strings.Contains(got, want) {
			t.Errorf("doctor did not name %q; failed:\n%s", want, got)
		}
	}
	if n := len(rep.Failed()); n != 5 {
		t.Errorf("%d failures, want the 5 bare-host problems:\n%s", n, got)
	}
	for _, c := range rep.Failed() {
		if c.Fix == "" {
			t.Errorf("%s has no fix", c.Name)
		}
		if c.Name == "privilege SDN.Use on /sdn/zones/localnetwork/vmbr0" && !strings.Contains(c.Fix, "pveum acl modify /sdn/zones/localnetwork/vmbr0 --roles PVESDNUser --tokens 'aimachine@pve!deploy'") {
			t.Errorf("privilege fix: %s", c.Fix)
		}
		if strings.HasPrefix(c.Name, "cloud image") && (!c.Prepare || !strings.Contains(c.Fix, catalog.DefaultImageSHA256)) {
			t.Errorf("image fix: %+v", c)
		}
	}
	st := b.s.API().Stats()
	if st.Mutating != 0 {
		t.Errorf("doctor made %d mutating API calls", st.Mutating)
	}
}

func TestPrepareWrongChecksumLeavesNothingThenPrepares(t *testing.T) {
	b := startBare(t)
	ctx := ctxT(t)
	vm := b.vms[0]
	good := vm.Image.SHA256
	vm.Image.SHA256 = strings.Repeat("0", 64)
	_, err := Prepare(ctx, b.o, b.cat, b.vms, PrepareOptions{})
	var te *provision.TaskError
	if !errors.As(err, &te) || !strings.Contains(err.Error(), "checksum mismatch") {
		t.Fatalf("wrong checksum: %v", err)
	}
	if rep, _ := Doctor(ctx, b.o, b.cat, b.vms); !strings.Contains(strings.Join(failedNames(rep), "\n"), "cloud image") {
		t.Fatal("a failed download left the image behind")
	}

	vm.Image.SHA256 = good
	e := b.s.Info()
	var lines []string
	res, err := Prepare(ctx, b.o, b.cat, b.vms, PrepareOptions{
		Progress: func(a Action, l string) { lines = append(lines, l) },
		SSH:      &NodeSSH{Target: e.JumpHost(), KeyFile: e.SSHKeyFile, KnownHostsFile: e.KnownHostsFile, LoopbackOnly: true},
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Done) != 3 {
		t.Errorf("done %+v", res.Done)
	}
	if !strings.Contains(strings.Join(lines, "\n"), "calculating checksum...OK, checksum verified") {
		t.Errorf("progress lines: %v", lines)
	}
	if data, ok := b.s.API().SnippetContent("local:snippets/aimachine-vendor.yaml"); !ok || data != VendorSnippet {
		t.Errorf("snippet over SSH: %q %v", data, ok)
	}
	before := b.s.API().Stats().Mutating
	again, err := Prepare(ctx, b.o, b.cat, b.vms, PrepareOptions{})
	if err != nil || len(again.Actions) != 0 {
		t.Errorf("second prepare: %+v %v", again, err)
	}
	if n := b.s.API().Stats().Mutating - before; n != 0 {
		t.Errorf("second prepare made %d mutating calls", n)
	}
	rep, _ := Doctor(ctx, b.o, b.cat, b.vms)
	if got := failedNames(rep); len(got) != 1 || got[0] != "privilege SDN.Use on /sdn/zones/localnetwork/vmbr0" {
		t.Errorf("after prepare, failures %v (only the privilege is left for the administrator)", got)
	}
}

func TestVendorSnippetIsTheCatalogExample(t *testing.T) {
	b, err := os.ReadFile("../../catalog/testdata/aimachine-vendor.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if string(b) != VendorSnippet {
		t.Error("VendorSnippet differs from catalog/testdata/aimachine-vendor.yaml")
	}
}

func TestPermissionsHasFollowsPropagation(t *testing.T) {
	p := map[string]map[string]bool{"/": {"VM.Audit": true, "Sys.Audit": false}, "/vms/140": {"VM.PowerMgmt": false}}
	perms := pve.Permissions(p)
	for _, c := range []struct {
		path, priv string
		want       bool
	}{{"/vms/141", "VM.Audit", true}, {"/nodes/pve", "Sys.Audit", false}, {"/", "Sys.Audit", true}, {"/vms/140", "VM.Audit", false}, {"/vms/140", "VM.PowerMgmt", true}} {
		if got := perms.Has(c.path, c.priv); got != c.want {
			t.Errorf("Has(%s, %s) = %v", c.path, c.priv, got)
		}
	}
}

// pvesm exits 0 when it drops a content type the storage does not support, with only a
// warning (pve-storage Plugin.pm decode_value: "storage does not support content type
// 'snippets'"); prepare must not write the snippet where Proxmox will not look for it.
func TestPrepareRefusesSnippetsOnAStorageThatDropsThem(t *testing.T) {
	b := startBare(t)
	ctx := ctxT(t)
	vm := b.vms[0]
	vm.Image.VendorData = "local-lvm:snippets/aimachine-vendor.yaml"
	e := b.s.Info()
	_, err := Prepare(ctx, b.o, b.cat, b.vms, PrepareOptions{
		SSH: &NodeSSH{Target: e.JumpHost(), KeyFile: e.SSHKeyFile, KnownHostsFile: e.KnownHostsFile, LoopbackOnly: true},
	})
	if err == nil || !strings.Contains(err.Error(), "does not support content type 'snippets'") || !strings.Contains(err.Error(), "file-based storage") {
		t.Fatalf("prepare with snippets on lvmthin: %v", err)
	}
	if _, ok := b.s.API().SnippetContent(vm.Image.VendorData); ok {
		t.Error("the snippet was written although the storage dropped the snippets content type")
	}
}
