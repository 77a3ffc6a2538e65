package provision

import (
	"context"
	"errors"
	"github.com/aimachine/aimachine/catalog"
	"strings"
	"testing"

	fakepve "github.com/aimachine/aimachine/fakes/pve"
)

// withStorage changes the topology's local-lvm storage (where the test catalog puts VM 140's
// 500 GiB disk).
func withStorage(typ string, totalGiB uint64) envOption {
	return withTopology(func(t *fakepve.Topology) {
		for i := range t.Storages {
			if t.Storages[i].Name == "local-lvm" {
				t.Storages[i].Type = typ
				t.Storages[i].TotalBytes = totalGiB << 30
			}
		}
	})
}

// TestPreflightChecksStorageCapacity: the boot disk is held against the storage status
// (GET /nodes/{node}/storage/{storage}/status, total and avail in bytes per the API schema)
// before anything is created, with the numbers and a hint.
func TestPreflightChecksStorageCapacity(t *testing.T) {
	for _, tc := range []struct {
		name   string
		opt    envOption
		inErr  string
		inHint string
	}{
		{"disk larger than the whole storage", withStorage("lvmthin", 200),
			`VM 140 wants a 500 GiB disk on storage "local-lvm", which holds 200.0 GiB in all (200.0 GiB free) on node "pve"`,
			"lower disk.size_gb in the catalog to at most 200, or put the disk on a larger storage"},
		{"thick storage without the free space", withStorage("lvm", 400),
			`VM 140 wants a 500 GiB disk on storage "local-lvm", which holds 400.0 GiB in all`, "at most 400"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t, tc.opt)
			_, err := e.c.Deploy(context.Background(), e.cat, vm140, e.opts())
			var te *TaskError
			if !errors.As(err, &te) {
				t.Fatalf("err = %v, want a TaskError", err)
			}
			if te.Task != "preflight: storage" || !strings.Contains(err.Error(), tc.inErr) || !strings.Contains(te.Hint, tc.inHint) {
				t.Fatalf("task %q, err %q, hint %q", te.Task, err, te.Hint)
			}
			if m := e.mutating(); m != 0 || e.vmExists(140) {
				t.Fatalf("preflight failure after %d mutating calls", m)
			}
		})
	}
}

// withOtherVolume puts a 200 GiB volume of another VM on local-lvm.
func withOtherVolume(c *envConfig) {
	for i := range c.topo.Storages {
		if c.topo.Storages[i].Name == "local-lvm" {
			c.topo.Storages[i].Volumes = append(c.topo.Storages[i].Volumes,
				fakepve.VolumeSpec{VolID: "local-lvm:vm-150-disk-0", Format: "raw", Size: 200 << 30, VMID: 150})
		}
	}
}

// A thick storage with the total but not the free space: other volumes use it.
func TestPreflightCountsWhatOtherVolumesUse(t *testing.T) {
	e := newEnv(t, withStorage("lvm", 600), withOtherVolume)
	_, err := e.c.Deploy(context.Background(), e.cat, vm140, e.opts())
	var te *TaskError
	if !errors.As(err, &te) || te.Task != "preflight: storage" || !strings.Contains(err.Error(), "(lvm), which has") {
		t.Fatalf("err = %v", err)
	}
	// On a thin pool the same shortfall is a note, not an error: the disk fills as written.
	e = newEnv(t, withStorage("lvmthin", 600), withOtherVolume)
	if _, err := e.c.Deploy(context.Background(), e.cat, vm140, e.opts()); err != nil && strings.Contains(err.Error(), "preflight: storage") {
		t.Fatalf("thin storage refused: %v", err)
	}
}

// A missing cloud image is named with the command that puts it there under the name real
// PVE accepts (the API's download-url, content import, a .qcow2 file name).
func TestPreflightMissingImageSaysHowToDownloadIt(t *testing.T) {
	e := newEnv(t, withTopology(func(t *fakepve.Topology) {
		for i := range t.Storages {
			t.Storages[i].Volumes = nil
		}
	}))
	_, err := e.c.Deploy(context.Background(), e.cat, vm140, e.opts())
	var te *TaskError
	if !errors.As(err, &te) || !strings.Contains(err.Error(), `cloud image "local:import/noble-server-cloudimg-amd64.qcow2" is not on node "pve"`) {
		t.Fatalf("err = %v", err)
	}
	// The pinned release and its checksum, never an unpinned "current" image.
	for _, want := range []string{
		"aimachine prepare --vm vm-llm-aimachine",
		"pvesh create /nodes/pve/storage/local/download-url --content import --url " + catalog.DefaultImageURL + " --filename noble-server-cloudimg-amd64.qcow2 --checksum " + catalog.DefaultImageSHA256 + " --checksum-algorithm sha256",
	} {
		if !strings.Contains(te.Hint, want) {
			t.Errorf("hint %q\nlacks %q", te.Hint, want)
		}
	}
}
