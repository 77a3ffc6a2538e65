package provision

import (
	"errors"
	"fmt"
	"regexp"
	"strings"

	"github.com/aimachine/aimachine/provision/pve"
)

var vmidInText = regexp.MustCompile(`VMID '(\d+)'`)

// hintFor says what to try next for an API or task failure.
func hintFor(err error, vmid int) string {
	switch {
	case errors.Is(err, pve.ErrPCIBusy):
		if m := vmidInText.FindStringSubmatch(err.Error()); m != nil {
			return fmt.Sprintf("stop VM %s (qm stop %s, and clear its onboot) or choose another GPU in the catalog", m[1], m[1])
		}
		return "stop the VM holding the GPU or choose another GPU in the catalog"
	case errors.Is(err, pve.ErrPCIMissing):
		return "check the catalog's gpu.pci_address against `lspci -nn` on the host (or the PCI mapping in Datacenter → Resource Mappings)"
	case errors.Is(err, pve.ErrNoIOMMU):
		return iommuHint
	case errors.Is(err, pve.ErrVFIOBind):
		return "the host could not hand the GPU to vfio-pci: a host driver (nvidia, nouveau, or snd_hda_intel for its audio function) or another device of its IOMMU group holds it. " +
			"Bind its ids to vfio-pci at boot (echo 'options vfio-pci ids=VENDOR:DEVICE,…' > /etc/modprobe.d/vfio.conf, blacklist nouveau/nvidia, update-initramfs -u -k all, reboot) " +
			"and check that `lspci -nnk -s 01:00` shows 'Kernel driver in use: vfio-pci' for every function"
	case errors.Is(err, pve.ErrStartTimeout):
		return fmt.Sprintf("QEMU did not come up within the start timeout: with a GPU passed through, all guest memory is allocated and pinned before the VM runs, which is slow when the host is short of free memory. "+
			"Free memory on the node (stop other VMs, drop caches), lower memory_mb in the catalog, or start VM %d once by hand with a longer timeout (qm start %d --timeout 300), then re-run", vmid, vmid)
	case errors.Is(err, pve.ErrRootOnlyHostPCI):
		return "use a cluster PCI mapping (gpu.mapping in the catalog) or authenticate as root@pam with " + EnvUsername + "/" + EnvPassword
	case errors.Is(err, pve.ErrLocked):
		return fmt.Sprintf("another task holds the lock of VM %d; wait for it to finish (or `qm unlock %d` if it is stale) and re-run", vmid, vmid)
	case errors.Is(err, pve.ErrExists):
		return fmt.Sprintf("VM %d exists; re-run deploy (it converges) or pick a free id in the catalog", vmid)
	}
	return apiHint(err)
}

// apiHint covers errors any call can return.
func apiHint(err error) string {
	switch {
	case errors.Is(err, pve.ErrAuth):
		return "check " + EnvAPIToken + " (USER@REALM!ID=SECRET) or " + EnvUsername + "/" + EnvPassword + " and the user's permissions (VM.Allocate, VM.Config.*, VM.PowerMgmt, Datastore.AllocateSpace, Sys.Audit)"
	case errors.Is(err, pve.ErrTransient):
		return "the Proxmox API kept failing; check the node's load and pveproxy/pvedaemon (systemctl status pveproxy) and re-run"
	case errors.Is(err, pve.ErrInvalid):
		return "PVE rejected a parameter; check the catalog value named in the error"
	}
	return ""
}

// taskErr builds the TaskError of a failed infrastructure task, with the PVE task's exit
// status and log tail when there is one.
func taskErr(task string, err error, vmid int) *TaskError {
	te := &TaskError{Phase: PhaseInfra, Task: task, Err: err, Hint: hintFor(err, vmid)}
	var tf *pve.TaskFailedError
	if errors.As(err, &tf) {
		te.Log = strings.Join(tf.Result.LogTail, "\n")
	}
	return te
}
