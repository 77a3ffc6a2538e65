// Package simtest drives a simulator with the real go-proxmox client the way a tool would,
// for the simulator's own tests: create and start VM 140 with a GPU and cloud-init.
package simtest

import (
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"net/http"
	"time"

	proxmox "github.com/luthermonson/go-proxmox"

	"github.com/aimachine/aimachine/fakes/sim"
)

// Auth selects how the client authenticates and hence how the GPU is attached.
type Auth int

const (
	// Token uses the API token and a cluster PCI mapping (tokens may not set raw hostpci).
	Token Auth = iota
	// RootTicket logs in as root@pam with the password and sets a raw hostpci.
	RootTicket
)

// Client returns a go-proxmox client for e, pinned to the simulator's CA.
func Client(e sim.Endpoint, auth Auth) (*proxmox.Client, error) {
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(e.CAPEM) {
		return nil, errors.New("simulator CA PEM holds no certificate")
	}
	opts := []proxmox.Option{
		proxmox.WithHTTPClient(&http.Client{Transport: &http.Transport{}}),
		proxmox.WithRootCAs(pool),
		proxmox.WithTimeout(30 * time.Second),
	}
	switch auth {
	case Token:
		opts = append(opts, proxmox.WithAPIToken(e.TokenID, e.TokenSecret))
	case RootTicket:
		opts = append(opts, proxmox.WithCredentials(&proxmox.Credentials{Username: e.Username, Password: e.Password}))
	}
	return proxmox.NewClient(e.APIURL, opts...), nil
}

// VM describes the VM to create.
type VM struct {
	Node    string // default "pve"
	VMID    int    // default 140
	IP      string // default "192.168.0.140"
	PubKeys []string
	// GPU is the PCI slot for RootTicket ("0000:01:00") or the mapping id for Token ("gpu0").
	GPU string
}

// CreateAndStart creates the VM (and, for Token, the PCI mapping gpu0 of 0000:01:00), starts it
// and waits for the guest agent. It returns the VM handle.
func CreateAndStart(ctx context.Context, c *proxmox.Client, auth Auth, vm VM) (*proxmox.VirtualMachine, error) {
	if vm.Node == "" {
		vm.Node = "pve"
	}
	if vm.VMID == 0 {
		vm.VMID = 140
	}
	if vm.IP == "" {
		vm.IP = "192.168.0.140"
	}
	node, err := c.Node(ctx, vm.Node)
	if err != nil {
		return nil, fmt.Errorf("node %s: %w", vm.Node, err)
	}
	hostpci := ""
	switch auth {
	case Token:
		if vm.GPU == "" {
			vm.GPU = "gpu0"
		}
		cl, err := c.Cluster(ctx)
		if err != nil {
			return nil, fmt.Errorf("cluster: %w", err)
		}
		if err := cl.NewPCIMapping(ctx, &proxmox.ClusterPCIMappingOptions{
			ID:  vm.GPU,
			Map: []string{"node=" + vm.Node + ",path=0000:01:00,id=10de:2d04,iommugroup=12"},
		}); err != nil {
			return nil, fmt.Errorf("create PCI mapping %s: %w", vm.GPU, err)
		}
		hostpci = "mapping=" + vm.GPU + ",pcie=1"
	case RootTicket:
		if vm.GPU == "" {
			vm.GPU = "0000:01:00"
		}
		hostpci = vm.GPU + ",pcie=1"
	}
	task, err := node.NewVirtualMachine(ctx, vm.VMID,
		proxmox.VirtualMachineOption{Name: "name", Value: "vm-llm-aimachine"},
		proxmox.VirtualMachineOption{Name: "machine", Value: "q35"},
		proxmox.VirtualMachineOption{Name: "bios", Value: "ovmf"},
		proxmox.VirtualMachineOption{Name: "efidisk0", Value: "local-lvm:1,efitype=4m,pre-enrolled-keys=0"},
		proxmox.VirtualMachineOption{Name: "cores", Value: 32},
		proxmox.VirtualMachineOption{Name: "sockets", Value: 1},
		proxmox.VirtualMachineOption{Name: "cpu", Value: "host"},
		proxmox.VirtualMachineOption{Name: "memory", Value: "51200"},
		proxmox.VirtualMachineOption{Name: "balloon", Value: 0},
		proxmox.VirtualMachineOption{Name: "scsihw", Value: "virtio-scsi-single"},
		proxmox.VirtualMachineOption{Name: "scsi0", Value: "local-lvm:0,import-from=local:import/noble-server-cloudimg-amd64.qcow2,iothread=1,discard=on"},
		proxmox.VirtualMachineOption{Name: "ide2", Value: "local-lvm:cloudinit"},
		proxmox.VirtualMachineOption{Name: "boot", Value: "order=scsi0"},
		proxmox.VirtualMachineOption{Name: "net0", Value: "virtio,bridge=vmbr0"},
		proxmox.VirtualMachineOption{Name: "ciuser", Value: "ubuntu"},
		proxmox.VirtualMachineOption{Name: "sshkeys", Value: proxmox.EncodeSSHKeys(vm.PubKeys...)},
		proxmox.VirtualMachineOption{Name: "ipconfig0", Value: "ip=" + vm.IP + "/24,gw=192.168.0.1"},
		proxmox.VirtualMachineOption{Name: "cicustom", Value: "vendor=local:snippets/aimachine-vendor.yaml"},
		proxmox.VirtualMachineOption{Name: "agent", Value: "enabled=1"},
		proxmox.VirtualMachineOption{Name: "onboot", Value: 1},
		proxmox.VirtualMachineOption{Name: "hostpci0", Value: hostpci},
	)
	if err != nil {
		return nil, fmt.Errorf("create VM %d: %w", vm.VMID, err)
	}
	if err := waitOK(ctx, task); err != nil {
		return nil, fmt.Errorf("create VM %d: %w", vm.VMID, err)
	}
	v, err := node.VirtualMachine(ctx, vm.VMID)
	if err != nil {
		return nil, fmt.Errorf("read VM %d: %w", vm.VMID, err)
	}
	task, err = v.Start(ctx)
	if err != nil {
		return nil, fmt.Errorf("start VM %d: %w", vm.VMID, err)
	}
	if err := waitOK(ctx, task); err != nil {
		return nil, fmt.Errorf("start VM %d: %w", vm.VMID, err)
	}
	if err := v.WaitForAgent(ctx, 120); err != nil {
		return nil, fmt.Errorf("VM %d guest agent: %w", vm.VMID, err)
	}
	return v, nil
}

// waitOK waits for a task and fails unless it ended OK (go-proxmox's Wait returns nil for failed tasks).
func waitOK(ctx context.Context, t *proxmox.Task) error {
	if err := t.Wait(ctx, 100*time.Millisecond, 2*time.Minute); err != nil {
		return fmt.Errorf("task %s: %w", t.UPID, err)
	}
	if !t.IsSuccessful {
		return fmt.Errorf("task %s ended %q", t.UPID, t.ExitStatus)
	}
	return nil
}
