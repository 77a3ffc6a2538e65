package pve

import (
	"errors"
	"fmt"
	"testing"

	"github.com/luthermonson/go-proxmox"
)

// The texts are PVE's (shared/reference/proxmox-api.md §4) as go-proxmox returns them.
func TestWrapMapsPVETextsToSentinels(t *testing.T) {
	tests := []struct {
		in        error
		want      error
		transient bool
	}{
		{errors.New("500 PCI device '0000:01:00.0' already in use by VMID '141'"), ErrPCIBusy, false},
		{errors.New("500 no PCI device found for '0000:99:00'"), ErrPCIMissing, false},
		{errors.New("500 cannot prepare PCI pass-through, IOMMU not present"), ErrNoIOMMU, false},
		// qemu-server src/PVE/QemuServer/PCI.pm prepare_pci_device; QemuServer.pm vm_start.
		{errors.New("500 can't unbind/bind PCI group to VFIO '0000:01:00.0'"), ErrVFIOBind, false},
		{errors.New("500 start failed: command '/usr/bin/kvm -id 140 -name vm' failed: got timeout"), ErrStartTimeout, true},
		{errors.New("500 only root can set 'hostpci0' config for non-mapped devices"), ErrRootOnlyHostPCI, false},
		{errors.New("500 QEMU guest agent is not running"), ErrAgentNotRunning, false},
		{errors.New("500 VM 140 is not running"), ErrNotRunning, false},
		{errors.New("500 unable to create VM 140 - VM 140 already exists on node 'pve'"), ErrExists, false},
		{errors.New("500 VM is locked (backup)"), ErrLocked, false},
		{errors.New("500 Configuration file 'nodes/pve/qemu-server/140.conf' does not exist"), ErrNotFound, false},
		{errors.New("500 can't lock file '/var/lock/qemu-server/lock-140.conf' - got timeout"), ErrLocked, true},
		{errors.New("500 got timeout"), ErrTransient, true},
		{&HTTPStatusError{Code: 503, Status: "503 Service Unavailable"}, ErrTransient, true},
		{&HTTPStatusError{Code: 596, Status: "596 Broken pipe"}, ErrTransient, true},
		{proxmox.ErrNotAuthorized, ErrAuth, false},
		{errors.New("bad request: 400 Parameter verification failed. - {\"vmid\":\"VM 140 already exists\"}"), ErrInvalid, false},
	}
	for _, tt := range tests {
		t.Run(tt.in.Error(), func(t *testing.T) {
			err := wrap("POST /x", tt.in)
			if !errors.Is(err, tt.want) {
				t.Fatalf("%v does not match %v", err, tt.want)
			}
			if got := IsTransient(err); got != tt.transient {
				t.Fatalf("IsTransient = %v, want %v", got, tt.transient)
			}
		})
	}
}

func TestTaskFailedErrorMatchesExitStatus(t *testing.T) {
	err := &TaskFailedError{Op: "start VM 140", Result: TaskResult{Type: "qmstart", ExitStatus: "PCI device '0000:01:00.0' already in use by VMID '141'"},
		kinds: classifyText("PCI device '0000:01:00.0' already in use by VMID '141'")}
	wrapped := fmt.Errorf("deploy: %w", err)
	if !errors.Is(wrapped, ErrPCIBusy) {
		t.Fatal("task failure should match ErrPCIBusy")
	}
	if errors.Is(wrapped, ErrTransient) {
		t.Fatal("a busy GPU is not transient")
	}
}

func TestAuthIsNeverTransient(t *testing.T) {
	// 401 after a timeout text must still not be retried.
	err := wrap("GET /version", fmt.Errorf("got timeout: %w", proxmox.ErrNotAuthorized))
	if IsTransient(err) {
		t.Fatal("an auth failure must never be retried")
	}
}
