package steps

import (
	"fmt"
	"os"
	"strings"

	"github.com/cucumber/godog"
	"golang.org/x/crypto/ssh"

	"github.com/aimachine/aimachine/catalog"
)

func (w *World) registerCatalogSteps(sc *godog.ScenarioContext) {
	sc.Given(`^a new VM definition needs to be added$`, w.aNewVMDefinitionNeedsToBeAdded)
	sc.When(`^the administrator adds "([^"]*)" to the infrastructure catalog$`, w.theAdministratorAddsToTheCatalog)
	sc.Then(`^the catalog includes VM ID (\d+) named "([^"]*)" with (\d+) CPU cores, (\d+) MB RAM and a (\d+) GB disk$`, w.theCatalogIncludesVM)
	sc.Then(`^the GPU passthrough device "([^"]*)" is specified with PCI id "([^"]*)"$`, w.theGPUIsSpecified)
	sc.Then(`^the Ubuntu 24\.04 cloud image is referenced as the boot image$`, w.theCloudImageIsReferenced)
	sc.Then(`^the catalog validates successfully$`, w.theCatalogValidates)
	sc.Then(`^the provisioning library can read and parse the catalog$`, w.theLibraryParsesTheCatalog)
	sc.Then(`^the VM can be provisioned from the catalog definition$`, w.theVMCanBeProvisioned)
}

func (w *World) aNewVMDefinitionNeedsToBeAdded() error {
	w.catalogPath = catalogFile()
	if _, err := os.Stat(w.catalogPath); err != nil {
		return fmt.Errorf("the infrastructure catalog is missing: %w", err)
	}
	return nil
}

func (w *World) theAdministratorAddsToTheCatalog(name string) error {
	c, err := catalog.Load(w.catalogPath)
	if err != nil {
		return err
	}
	vm, err := c.VM(name)
	if err != nil {
		return err
	}
	w.cat, w.vm = c, vm
	return nil
}

func (w *World) theCatalogIncludesVM(id int, name string, cores, memMB, diskGB int) error {
	vm := w.vm
	var diffs []string
	check := func(what string, got, want any) {
		if got != want {
			diffs = append(diffs, fmt.Sprintf("%s = %v, want %v", what, got, want))
		}
	}
	check("id", vm.ID, id)
	check("name", vm.Name, name)
	check("cores", vm.Cores, cores)
	check("memory_mb", vm.MemoryMB, memMB)
	check("disk.size_gb", vm.Disk.SizeGB, diskGB)
	if len(diffs) > 0 {
		return fmt.Errorf("catalog entry %q differs: %s", vm.Name, strings.Join(diffs, "; "))
	}
	return nil
}

func (w *World) theGPUIsSpecified(addr, pciID string) error {
	g := w.vm.GPU
	if g == nil || !g.Enabled {
		return fmt.Errorf("VM %q has no GPU passthrough enabled", w.vm.Name)
	}
	if g.PCIAddress != addr && g.Mapping == "" {
		return fmt.Errorf("gpu.pci_address = %q, want %q (or a cluster mapping)", g.PCIAddress, addr)
	}
	if g.Expect.PCIID != pciID {
		return fmt.Errorf("gpu.expect.pci_id = %q, want %q", g.Expect.PCIID, pciID)
	}
	return nil
}

func (w *World) theCloudImageIsReferenced() error {
	img := w.vm.Image
	if img.ISO != "" {
		return fmt.Errorf("image.iso = %q: the live-server ISO cannot install unattended; use the noble cloud image", img.ISO)
	}
	if !strings.Contains(img.CloudImage, "noble-server-cloudimg") {
		return fmt.Errorf("image.cloud_image = %q, want the Ubuntu 24.04 (noble) cloud image", img.CloudImage)
	}
	return nil
}

func (w *World) theCatalogValidates() error {
	return w.cat.Validate()
}

func (w *World) theLibraryParsesTheCatalog() error {
	data, err := os.ReadFile(w.catalogPath)
	if err != nil {
		return err
	}
	c, err := catalog.Parse(data, w.catalogPath)
	if err != nil {
		return err
	}
	if _, err := c.VM(w.vm.Name); err != nil {
		return err
	}
	return nil
}

// theVMCanBeProvisioned checks that every input a deployment needs resolves from the catalog.
func (w *World) theVMCanBeProvisioned() error {
	vm := w.vm
	keys, err := vm.PublicKeys()
	if err != nil {
		return err
	}
	if len(keys) == 0 {
		return fmt.Errorf("VM %q has no SSH public keys for cloud-init", vm.Name)
	}
	for _, k := range keys {
		if _, _, _, _, err := ssh.ParseAuthorizedKey([]byte(k)); err != nil {
			return fmt.Errorf("VM %q: cloud-init SSH key %.30q… is not an authorized_keys line: %v", vm.Name, k, err)
		}
	}
	if vm.IP() == "" {
		return fmt.Errorf("VM %q has no address", vm.Name)
	}
	if vm.Node == "" {
		return fmt.Errorf("VM %q names no Proxmox node", vm.Name)
	}
	if st, path, ok := strings.Cut(vm.Image.CloudImage, ":"); !ok || st == "" || path == "" {
		return fmt.Errorf("VM %q: image.cloud_image %q is not a Proxmox volume id STORAGE:PATH", vm.Name, vm.Image.CloudImage)
	}
	return nil
}
