package pve

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	tm "github.com/Telmate/proxmox-api-go/proxmox"
)

// reqLog wraps the fake and records "METHOD path" of every API request (for failure messages).
type reqLog struct {
	h  http.Handler
	mu sync.Mutex
	l  []string
}

func (r *reqLog) ServeHTTP(w http.ResponseWriter, q *http.Request) {
	r.mu.Lock()
	r.l = append(r.l, q.Method+" "+q.URL.Path)
	r.mu.Unlock()
	r.h.ServeHTTP(w, q)
}

func (r *reqLog) String() string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return strings.Join(r.l, "\n")
}

func newTelmateEnv(t *testing.T, tp Topology, version string) (*Server, string, *reqLog) {
	t.Helper()
	s := New(WithAuthDelay(0), WithTimeScale(0), WithTopology(tp), WithGuestFactory(NewStaticGuestFactory()), WithPVEVersion(version))
	rl := &reqLog{h: s}
	ts := httptest.NewUnstartedServer(rl)
	ts.EnableHTTP2 = false
	ts.TLS = s.TLSConfig()
	ts.StartTLS()
	t.Cleanup(ts.Close)
	return s, ts.URL + "/api2/json", rl
}

func telmateClient(t *testing.T, s *Server, url string) *tm.Client {
	t.Helper()
	hc := &http.Client{Timeout: 20 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: s.CertPool()}}}
	c, err := tm.NewClient(url, hc, "", &tls.Config{RootCAs: s.CertPool()}, "", 30, false)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// TestTelmateCompat drives the fake with the Telmate provider's client (github.com/Telmate/proxmox-api-go)
// through the lifecycle a Terraform apply/destroy performs. Expectations come from Proxmox source:
// pve-http-server src/PVE/APIServer/AnyEvent.pm, pve-manager PVE/HTTPServer.pm auth_handler,
// pve-access-control src/PVE/API2/AccessControl.pm and src/PVE/RPCEnvironment.pm, qemu-server
// src/PVE/API2/Qemu.pm, pve-ha-manager src/PVE/API2/HA/Resources.pm.
func TestTelmateCompat(t *testing.T) {
	for _, v := range []string{"8.4.1", "9.0.3"} {
		t.Run(v, func(t *testing.T) { telmateLifecycle(t, v) })
	}
}

func telmateLifecycle(t *testing.T, version string) {
	tp := DefaultTopology()
	tp.Mappings = []PCIMappingSpec{{ID: "gpu0", Map: []string{"node=pve,path=0000:01:00,id=10de:2d04,iommugroup=12"}}}
	tp.VMs = []VMSpec{{Node: "pve", VMID: 120, Config: map[string]string{
		"name": "existing", "memory": "2048", "cores": "2", "machine": "q35", "ostype": "l26",
		"net0": "virtio=BC:24:11:2A:3B:4C,bridge=vmbr0", "scsihw": "virtio-scsi-single",
	}}}
	s, url, rl := newTelmateEnv(t, tp, version)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	fail := func(t *testing.T, format string, a ...any) {
		t.Helper()
		t.Fatalf(format+"\nrequests:\n%s", append(a, rl)...)
	}
	pw := telmateClient(t, s, url)
	tok := telmateClient(t, s, url)
	t.Run("password login", func(t *testing.T) {
		// Telmate sends the ticket as "Authorization: PVEAuthCookie=<ticket>" with the CSRF header:
		// AnyEvent.pm unshift_read_header falls back to the cookie in the Authorization header.
		if err := pw.Login(ctx, "root@pam", DefaultRootPassword, ""); err != nil {
			fail(t, "login: %v", err)
		}
		// AccessControl.pm create_ticket: any failure is PVE::Exception "authentication failure\n", code 401
		// (a handler error: HTTPServer.pm rest_handler + Formatter/Standard.pm give it a JSON body
		// with the message, which Telmate decodes into an ApiError)
		err := telmateClient(t, s, url).Login(ctx, "root@pam", "wrong", "")
		var ae *tm.ApiError
		if !errors.As(err, &ae) || ae.Code != "401" || ae.Message != "authentication failure" {
			fail(t, "wrong password: %v", err)
		}
		if _, err := pw.GetVersion(ctx); err != nil {
			fail(t, "version with the ticket: %v", err)
		}
	})
	t.Run("token auth", func(t *testing.T) {
		var tid tm.ApiTokenID
		if err := tid.Parse(DefaultTokenID); err != nil {
			t.Fatal(err)
		}
		if version == "8.4.1" { // Telmate retries bodiless errors for 6 s: once is enough
			bad := telmateClient(t, s, url)
			bad.SetAPIToken(tid, tm.ApiTokenSecret("00000000-0000-0000-0000-000000000000"))
			// HTTPServer.pm auth_handler: verify_token fails -> die "Authentication failed!\n" (401, no body)
			if _, err := bad.GetVersion(ctx); err == nil || err.Error() != "401 Authentication failed!" {
				fail(t, "bad secret: %v", err)
			}
		}
		tok.SetAPIToken(tid, tm.ApiTokenSecret(DefaultTokenSecret))
		v, err := tok.GetVersion(ctx)
		if err != nil {
			fail(t, "version: %v", err)
		}
		if got := fmt.Sprintf("%d.%d.%d", v.Major, v.Minor, v.Patch); got != version {
			fail(t, "version %+v", v)
		}
	})
	t.Run("read config", func(t *testing.T) {
		// GetVmRefById finds the node in /cluster/resources; the config read ends with
		// /cluster/ha/resources/120, which dies "no such resource 'vm:120'" (Resources.pm read,
		// $api_copy_config) and Telmate treats as "no HA".
		ref, err := tok.GetVmRefById(ctx, 120)
		if err != nil {
			fail(t, "vmref: %v", err)
		}
		if ref.Node() != "pve" {
			fail(t, "node %q", ref.Node())
		}
		cfg, err := tm.NewConfigQemuFromApi(ctx, ref, tok)
		if err != nil {
			fail(t, "config: %v", err)
		}
		if cfg.Name == nil || *cfg.Name != "existing" || cfg.Memory == nil || cfg.Memory.CapacityMiB == nil ||
			*cfg.Memory.CapacityMiB != 2048 || cfg.CPU == nil || cfg.CPU.Cores == nil || *cfg.CPU.Cores != 2 {
			fail(t, "config %+v", cfg)
		}
	})
	id := tm.GuestID(150)
	node := tm.NodeName("pve")
	name := tm.GuestName("telmate")
	mem := tm.QemuMemoryCapacity(4096)
	cores := tm.QemuCpuCores(4)
	mid := tm.ResourceMappingPciID("gpu0")
	pcie, rombar := true, true
	vmr := tm.NewVmRef(id)
	t.Run("create with mapped hostpci", func(t *testing.T) {
		cfg := tm.ConfigQemu{ID: &id, Node: &node, Name: &name, Machine: "q35",
			Memory: &tm.QemuMemory{CapacityMiB: &mem}, CPU: &tm.QemuCPU{Cores: &cores},
			PciDevices: tm.QemuPciDevices{0: tm.QemuPci{Mapping: &tm.QemuPciMapping{ID: &mid, PCIe: &pcie, ROMbar: &rombar}}}}
		// a token of root@pam may set a mapped hostpci (Qemu.pm check_hostpci_perm: only raw
		// host= values are root@pam-only); Create ends with GET /access/permissions
		r, err := tok.New().QemuGuest.Create(ctx, cfg)
		if err != nil {
			fail(t, "create: %v", err)
		}
		vmr = r
		raw := vmConf(s, int(id))
		// options other than disks are stored as sent (Qemu.pm create_vm $createfn: my $conf = $param)
		if raw["hostpci0"] != "mapping=gpu0,pcie=1" || raw["memory"] != "4096" || raw["cores"] != "4" || raw["name"] != "telmate" {
			fail(t, "config %v", raw)
		}
	})
	t.Run("update", func(t *testing.T) {
		mem2 := tm.QemuMemoryCapacity(8192)
		// Update reads config + /pending (Qemu.pm vm_pending) and PUTs the change with the ticket
		// client's CSRF token
		if err := pw.New().QemuGuest.Update(ctx, *vmr, false, false, tm.ConfigQemu{Memory: &tm.QemuMemory{CapacityMiB: &mem2}}); err != nil {
			fail(t, "update: %v", err)
		}
		cfg, err := tm.NewConfigQemuFromApi(ctx, vmr, tok)
		if err != nil {
			fail(t, "read back: %v", err)
		}
		if *cfg.Memory.CapacityMiB != 8192 || cfg.PciDevices[0].Mapping == nil || *cfg.PciDevices[0].Mapping.ID != "gpu0" {
			fail(t, "after update %+v", cfg)
		}
		pending, err := vmr.PendingChanges(ctx, tok)
		if err != nil || pending {
			fail(t, "pending %v %v", pending, err)
		}
	})
	status := func(t *testing.T) string {
		st, err := tok.GetVmState(ctx, vmr)
		if err != nil {
			fail(t, "status: %v", err)
		}
		return st["status"].(string)
	}
	t.Run("start", func(t *testing.T) {
		if err := tok.New().Guest.Start(ctx, *vmr); err != nil {
			fail(t, "start: %v", err)
		}
		// vm_start reserves the mapped device's functions for the VM (PCI.pm reserve_pci_usage)
		if st := status(t); st != "running" || s.Snapshot().Reservations["pve "+DefaultGPUID] != 150 {
			fail(t, "status %q, reservations %v", st, s.Snapshot().Reservations)
		}
	})
	t.Run("stop", func(t *testing.T) {
		if err := tok.New().Guest.Stop(ctx, *vmr, false); err != nil {
			fail(t, "stop: %v", err)
		}
		if st := status(t); st != "stopped" {
			fail(t, "status %q", st)
		}
	})
	t.Run("delete", func(t *testing.T) {
		if err := vmr.Delete(ctx, tok); err != nil {
			fail(t, "delete: %v", err)
		}
		if vmConf(s, 150) != nil {
			fail(t, "VM 150 still exists")
		}
		// the VM is gone from /cluster/resources, where Telmate looks guests up
		if _, err := tok.GetVmRefById(ctx, 150); err == nil {
			fail(t, "VM 150 still listed")
		}
	})
}

// vmConf is the stored config of vmid (nil when it does not exist).
func vmConf(s *Server, vmid int) map[string]string {
	for _, v := range s.Snapshot().VMs {
		if v.VMID == vmid {
			return v.Config
		}
	}
	return nil
}
