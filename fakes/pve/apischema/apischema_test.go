package apischema

import (
	"bytes"
	"os"
	"testing"
)

// sharedSchema is the reference copy beside the repository (absent in a fresh clone).
const sharedSchema = "../../../../shared/reference/pve-api-schema.json"

func TestVendoredMatchesShared(t *testing.T) {
	raw, err := os.ReadFile(sharedSchema)
	if os.IsNotExist(err) {
		t.Skip("no ../shared beside the repository: the vendored copy is used as is")
	}
	if err != nil {
		t.Fatal(err)
	}
	want, err := Compact(raw)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(want, vendored) {
		t.Fatal("schema.json.gz differs from ../shared/reference/pve-api-schema.json: run go generate ./fakes/pve/apischema")
	}
}

func TestLoad(t *testing.T) {
	a, err := Load()
	if err != nil {
		t.Fatal(err)
	}
	if a.Source != Source {
		t.Fatalf("source %q", a.Source)
	}
	// pve-docs 9.1.3 api-viewer: 649 operations (../shared/reference/proxmox-api.md §9)
	if len(a.Operations) != 649 {
		t.Fatalf("%d operations, want 649", len(a.Operations))
	}
	op, vars, _ := a.Find("POST", Split("/nodes/pve/qemu"))
	if op == nil || op.Name != "create_vm" || vars["node"] != "pve" {
		t.Fatalf("POST /nodes/pve/qemu: %+v %v", op, vars)
	}
	vmid := op.Parameters.Properties["vmid"]
	if vmid == nil || vmid.Format != "pve-vmid" || vmid.Minimum == nil || *vmid.Minimum != 100 {
		t.Fatalf("vmid schema %+v", vmid)
	}
	scsi := op.Parameters.Properties["scsi[n]"]
	if scsi == nil || scsi.FormatSchema["file"] == nil || !scsi.FormatSchema["file"].DefaultKey {
		t.Fatalf("scsi[n] schema %+v", scsi)
	}
	if op, _, known := a.Find("GET", Split("/nodes/pve/qemu/100/foo")); op != nil || known {
		t.Fatal("unknown path found")
	}
	if op, _, known := a.Find("PATCH", Split("/nodes/pve/qemu")); op != nil || !known {
		t.Fatal("PATCH: want unknown method on a known path")
	}
}
