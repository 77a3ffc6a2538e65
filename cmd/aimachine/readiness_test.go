package main

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/aimachine/aimachine/catalog"
	"github.com/aimachine/aimachine/fakes/sim"
)

const bareCatalog = "../../provision/readiness/testdata/catalog.yml"

// bareHost starts the simulator on the bare-host topology and points the CLI at it with the
// least-privilege token (fakes/sim/testdata/bare-host.yaml).
func bareHost(t *testing.T) *sim.Sim {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	s, err := sim.Start(ctx, sim.Options{TopologyFile: "../../fakes/sim/testdata/bare-host.yaml"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close() })
	e := s.Info()
	env := map[string]string{
		"PROXMOX_VE_ENDPOINT":  e.BaseURL,
		"PROXMOX_VE_API_TOKEN": "aimachine@pve!deploy=0b7a9c1e-bare-host-test-token-secret",
		"PROXMOX_VE_CA_FILE":   e.CAFile,
		"AIMACHINE_SIMULATOR":  "1",
		envSSHKey:              e.SSHKeyFile,
		envKnownHosts:          e.KnownHostsFile,
	}
	old := getenv
	getenv = func(k string) string { return env[k] }
	t.Cleanup(func() { getenv = old })
	return s
}

func TestDoctorAndPrepareCLIOnBareHost(t *testing.T) {
	s := bareHost(t)
	code, out, errOut := runInfraCLI("doctor", "--vm", "vm-llm-aimachine", "--catalog", bareCatalog)
	if code != 1 {
		t.Fatalf("doctor on the bare host: exit %d\n%s\n%s", code, out, errOut)
	}
	for _, want := range []string{
		"✗ vm-llm-aimachine: cloud image local:import/noble-server-cloudimg-amd64.qcow2 present — not in local on node pve [prepare]",
		"✗ vm-llm-aimachine: vendor snippet local:snippets/aimachine-vendor.yaml present",
		"✗ vm-llm-aimachine: PCI mapping rtx5060ti exists — no such cluster mapping [prepare]",
		"✗ vm-llm-aimachine: privilege SDN.Use on /sdn/zones/localnetwork/vmbr0",
		"    fix: pveum acl modify /sdn/zones/localnetwork/vmbr0 --roles PVESDNUser --tokens 'aimachine@pve!deploy'",
		"    fix: on the node: pvesm set local --content iso,vztmpl,backup,import,snippets",
		"✓ credentials accepted — aimachine@pve!deploy (API token)",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("doctor output lacks %q:\n%s", want, out)
		}
	}
	if st := s.API().Stats(); st.Mutating != 0 {
		t.Errorf("doctor made %d mutating calls", st.Mutating)
	}
	if strings.Contains(out+errOut, "0b7a9c1e-bare-host-test-token-secret") {
		t.Error("doctor printed the token secret")
	}
	code, out, _ = runInfraCLI("doctor", "--vm", "vm-llm-aimachine", "--catalog", bareCatalog, "--json")
	var rep struct {
		OK     bool `json:"ok"`
		Checks []struct{ Status, Name string }
	}
	if err := json.Unmarshal([]byte(out), &rep); err != nil || code != 1 || rep.OK || len(rep.Checks) < 10 {
		t.Errorf("--json: exit %d, %v, %+v", code, err, rep)
	}

	// without --yes, a "n" answer changes nothing
	stdin = strings.NewReader("n\n")
	t.Cleanup(func() { stdin = os.Stdin })
	code, _, errOut = runInfraCLI("prepare", "--vm", "vm-llm-aimachine", "--catalog", bareCatalog)
	if code != 1 || !strings.Contains(errOut, "Proceed? [y/N]") || !strings.Contains(errOut, "nothing changed") {
		t.Errorf("declined prepare: exit %d\n%s", code, errOut)
	}

	// a wrong checksum fails and leaves no volume
	data, _ := os.ReadFile(bareCatalog)
	bad := filepath.Join(t.TempDir(), "bad.yml")
	_ = os.WriteFile(bad, []byte(strings.Replace(string(data), "      vendor_data:", "      url: "+catalog.DefaultImageURL+"\n      sha256: "+strings.Repeat("ab", 32)+"\n      vendor_data:", 1)), 0o600)
	code, _, errOut = runInfraCLI("prepare", "--vm", "vm-llm-aimachine", "--catalog", bad, "--yes")
	if code != 1 || !strings.Contains(errOut, "checksum mismatch: got '"+catalog.DefaultImageSHA256+"' != expect '"+strings.Repeat("ab", 32)+"'") {
		t.Errorf("wrong checksum: exit %d\n%s", code, errOut)
	}

	e := s.Info()
	code, out, errOut = runInfraCLI("prepare", "--vm", "vm-llm-aimachine", "--catalog", bareCatalog, "--yes", "--node-ssh", e.JumpHost())
	if code != 0 {
		t.Fatalf("prepare: exit %d\n%s\n%s", code, out, errOut)
	}
	for _, want := range []string{"  … calculating checksum...OK, checksum verified", "✓ download " + catalog.DefaultImageURL, "✓ create PCI mapping rtx5060ti", "✓ put the vendor snippet"} {
		if !strings.Contains(errOut, want) {
			t.Errorf("prepare stderr lacks %q:\n%s", want, errOut)
		}
	}
	code, _, errOut = runInfraCLI("prepare", "--vm", "vm-llm-aimachine", "--catalog", bareCatalog, "--yes")
	if code != 0 || !strings.Contains(errOut, "nothing to do") {
		t.Errorf("second prepare: exit %d\n%s", code, errOut)
	}

	// what only the administrator can do: grant the privilege doctor named
	if err := s.Control().GrantACL(context.Background(), "/sdn/zones/localnetwork/vmbr0", "aimachine@pve!deploy", "PVESDNUser", false); err != nil {
		t.Fatal(err)
	}
	code, out, errOut = runInfraCLI("doctor", "--vm", "vm-llm-aimachine", "--catalog", bareCatalog)
	if code != 0 {
		t.Fatalf("doctor after prepare and the grant: exit %d\n%s\n%s", code, out, errOut)
	}

	// then deploy and verify pass, with the token (the catalog's key replaced by the simulator's
	// tool key: the sample key's private half is gone)
	own := filepath.Join(t.TempDir(), "catalog.yml")
	_ = os.WriteFile(own, []byte(strings.Replace(string(data), "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIEyBEct9p+/3BQlA0E/FkkGXIOT1/sePYm3vsIcQTqBH aimachine-testdata", e.SSHPublicKey, 1)), 0o600)
	t.Chdir(t.TempDir()) // deploy writes reports/<vm>-<run>/evidence.json
	code, out, errOut = runInfraCLI("deploy", "--vm", "vm-llm-aimachine", "--catalog", own, "--jump", e.JumpHost())
	if code != 0 {
		t.Fatalf("deploy after doctor passed: exit %d\n%s\n%s", code, out, errOut)
	}
	if matches, _ := filepath.Glob("reports/vm-llm-aimachine-*/evidence.json"); len(matches) != 1 {
		t.Errorf("deploy wrote no evidence record: %v\n%s", matches, errOut)
	}
	code, out, errOut = runInfraCLI("verify", "--vm", "vm-llm-aimachine", "--catalog", own, "--jump", e.JumpHost())
	if code != 0 || !strings.Contains(errOut, "checks passed") {
		t.Fatalf("verify: exit %d\n%s\n%s", code, out, errOut)
	}
}

func TestPrepareWithoutSSHPrintsTheSnippet(t *testing.T) {
	bareHost(t)
	code, out, errOut := runInfraCLI("prepare", "--vm", "vm-llm-aimachine", "--catalog", bareCatalog, "--yes")
	if code != 0 {
		t.Fatalf("exit %d\n%s", code, errOut)
	}
	for _, want := range []string{"pvesm set local --content iso,vztmpl,backup,import,snippets\n", "cat > /var/lib/vz/snippets/aimachine-vendor.yaml <<'AIMACHINE_EOF'\n#cloud-config\n", "  - qemu-guest-agent\n"} {
		if !strings.Contains(out, want) {
			t.Errorf("stdout lacks %q:\n%s", want, out)
		}
	}
}

func TestDoctorUntrustedCertificateNamesTheFingerprint(t *testing.T) {
	s := bareHost(t)
	env := map[string]string{"PROXMOX_VE_ENDPOINT": s.Info().BaseURL, "PROXMOX_VE_API_TOKEN": "aimachine@pve!deploy=x", "AIMACHINE_SIMULATOR": "1"}
	getenv = func(k string) string { return env[k] }
	code, out, _ := runInfraCLI("doctor", "--vm", "vm-llm-aimachine", "--catalog", bareCatalog)
	if code != 1 || !strings.Contains(out, "✗ TLS certificate trusted") || !strings.Contains(out, "export PROXMOX_VE_FINGERPRINT="+s.Info().Fingerprint) {
		t.Errorf("exit %d\n%s", code, out)
	}
}
