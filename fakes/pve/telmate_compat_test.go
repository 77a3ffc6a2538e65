package pve

import (
	"context"
	"crypto/tls"
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

func newTelmateEnv(t *testing.T, tp Topology) (*Server, string, *reqLog) {
	t.Helper()
	s := New(WithAuthDelay(0), WithTimeScale(0), WithTopology(tp), WithGuestFactory(NewStaticGuestFactory()))
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

func TestTelmateCompat(t *testing.T) {
	tp := DefaultTopology()
	tp.Mappings = []PCIMappingSpec{{ID: "gpu0", Map: []string{"node=pve,path=0000:01:00,id=10de:2d04,iommugroup=12"}}}
	tp.VMs = []VMSpec{{Node: "pve", VMID: 120, Config: map[string]string{
		"name": "existing", "memory": "2048", "cores": "2", "machine": "q35", "ostype": "l26",
		"net0": "virtio=BC:24:11:2A:3B:4C,bridge=vmbr0", "scsihw": "virtio-scsi-single",
	}}}
	s, url, rl := newTelmateEnv(t, tp)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	fail := func(t *testing.T, format string, a ...any) {
		t.Helper()
		t.Fatalf(format+"\nrequests:\n%s", append(a, rl)...)
	}
	pw := telmateClient(t, s, url)
	tok := telmateClient(t, s, url)
	t.Run("password login", func(t *testing.T) {
		if err := pw.Login(ctx, "root@pam", DefaultRootPassword, ""); err != nil {
			fail(t, "login: %v", err)
		}
		if err := telmateClient(t, s, url).Login(ctx, "root@pam", "wrong", ""); err == nil {
			fail(t, "wrong password accepted")
		}
		if _, err := pw.GetVersion(ctx); err != nil {
			fail(t, "version: %v", err)
		}
	})
	t.Run("token auth", func(t *testing.T) {
		var tid tm.ApiTokenID
		if err := tid.Parse(DefaultTokenID); err != nil {
			t.Fatal(err)
		}
		tok.SetAPIToken(tid, tm.ApiTokenSecret(DefaultTokenSecret))
		v, err := tok.GetVersion(ctx)
		if err != nil {
			fail(t, "version: %v", err)
		}
		if v.Major != 8 {
			fail(t, "version %+v", v)
		}
	})
	t.Run("read config", func(t *testing.T) {
		ref, err := tok.GetVmRefById(ctx, 120)
		if err != nil {
			fail(t, "vmref: %v", err)
		}
		cfg, err := tm.NewConfigQemuFromApi(ctx, ref, tok)
		if err != nil {
			fail(t, "config: %v", err)
		}
		if cfg.Name == nil || *cfg.Name != "existing" {
			fail(t, "name %v", cfg.Name)
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
		r, err := tok.New().QemuGuest.Create(ctx, cfg)
		if err != nil {
			fail(t, "create: %v", err)
		}
		vmr = r
		raw := vmConf(s, int(id))
		if raw["hostpci0"] != "mapping=gpu0,pcie=1" {
			fail(t, "hostpci0 %q", raw["hostpci0"])
		}
	})
	t.Run("update", func(t *testing.T) {
		mem2 := tm.QemuMemoryCapacity(8192)
		if err := tok.New().QemuGuest.Update(ctx, *vmr, false, false, tm.ConfigQemu{Memory: &tm.QemuMemory{CapacityMiB: &mem2}}); err != nil {
			fail(t, "update: %v", err)
		}
	})
	t.Run("start", func(t *testing.T) {
		if err := tok.New().Guest.Start(ctx, *vmr); err != nil {
			fail(t, "start: %v", err)
		}
	})
	t.Run("stop", func(t *testing.T) {
		if err := tok.New().Guest.Stop(ctx, *vmr, false); err != nil {
			fail(t, "stop: %v", err)
		}
	})
	t.Run("delete", func(t *testing.T) {
		if err := vmr.Delete(ctx, tok); err != nil {
			fail(t, "delete: %v", err)
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
