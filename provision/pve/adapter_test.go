package pve

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

// canned serves fixed payloads shaped like real PVE answers (shared/reference/proxmox-api.md
// §2, §7): the JSON types that trip go-proxmox's own structs.
func canned(t *testing.T, routes map[string]string) API {
	t.Helper()
	ts := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		key := r.Method + " " + strings.TrimPrefix(r.URL.Path, "/api2/json")
		body, ok := routes[key]
		if !ok {
			w.WriteHeader(http.StatusNotImplemented)
			return
		}
		if strings.HasPrefix(body, "HTTP ") {
			var code int
			fmt.Sscanf(body, "HTTP %d", &code)
			w.WriteHeader(code)
			return
		}
		w.Header().Set("Content-Type", "application/json;charset=UTF-8")
		fmt.Fprint(w, body)
	}))
	t.Cleanup(ts.Close)
	api, err := Dial(ConnConfig{URL: ts.URL + "/api2/json", TokenID: "root@pam!t", TokenSecret: "s", Insecure: true})
	if err != nil {
		t.Fatal(err)
	}
	return api
}

func TestPCIListWithIntegerMdevDecodes(t *testing.T) {
	api := canned(t, map[string]string{
		"GET /nodes/pve/hardware/pci": `{"data":[{"id":"0000:01:00.0","class":"0x030000","vendor":"0x10de","device":"0x2d04","iommugroup":12,"mdev":1,"nvidia":1,"vendor_name":"NVIDIA Corporation","device_name":"GB206"},
			{"id":"0000:02:00.0","class":"0x010802","vendor":"0x144d","device":"0xa80c","iommugroup":-1}]}`,
	})
	devs, err := api.PCIDevices(context.Background(), "pve")
	if err != nil {
		t.Fatalf("go-proxmox's own struct fails on mdev:1; ours must not: %v", err)
	}
	if len(devs) != 2 || devs[0].PCIID() != "10de:2d04" || devs[0].IOMMUGroup != 12 || devs[1].IOMMUGroup != -1 {
		t.Fatalf("devs = %+v", devs)
	}
}

func TestExecStatusWithSignalDecodes(t *testing.T) {
	api := canned(t, map[string]string{
		"GET /nodes/pve/qemu/140/agent/exec-status": `{"data":{"exited":1,"signal":9,"err-truncated":1,"out-data":"partial"}}`,
	})
	st, err := api.AgentExecStatus(context.Background(), "pve", 140, 7)
	if err != nil {
		t.Fatalf("signal as an integer: %v", err)
	}
	if !st.Exited || st.Signal != 9 || st.Stdout != "partial" {
		t.Fatalf("status = %+v", st)
	}
}

func TestGatewayStatusIsAnErrorNotAnEmptySuccess(t *testing.T) {
	api := canned(t, map[string]string{"POST /nodes/pve/qemu/140/agent/ping": "HTTP 503"})
	err := api.AgentPing(context.Background(), "pve", 140)
	if !errors.Is(err, ErrTransient) {
		t.Fatalf("a 503 must not pass as success: %v", err)
	}
}

func TestConfigValuesAsStrings(t *testing.T) {
	api := canned(t, map[string]string{
		"GET /nodes/pve/qemu/140/config": `{"data":{"cores":32,"memory":"51200","onboot":1,"agent":"enabled=1","balloon":0,"cpulimit":"0","digest":"abc","lock":null}}`,
	})
	cfg, err := api.VMConfig(context.Background(), "pve", 140)
	if err != nil {
		t.Fatal(err)
	}
	want := Config{"cores": "32", "memory": "51200", "onboot": "1", "agent": "enabled=1", "balloon": "0", "cpulimit": "0", "digest": "abc"}
	if fmt.Sprint(cfg) != fmt.Sprint(want) {
		t.Fatalf("cfg = %v, want %v", cfg, want)
	}
}

func TestFailedTaskReturnsExitStatusAndLogTail(t *testing.T) {
	upid := "UPID:pve:0002E0B4:00C0A6F1:6650A1B2:qmstart:140:root@pam!t:"
	api := canned(t, map[string]string{
		"POST /nodes/pve/qemu/140/status/start":    `{"data":"` + upid + `"}`,
		"GET /nodes/pve/tasks/" + upid + "/status": `{"data":{"upid":"` + upid + `","node":"pve","pid":188596,"pstart":12625649,"starttime":1716560306,"type":"qmstart","id":"140","user":"root@pam","tokenid":"t","status":"stopped","exitstatus":"PCI device '0000:01:00.0' already in use by VMID '141'"}}`,
		"GET /nodes/pve/tasks/" + upid + "/log":    `{"data":[{"n":1,"t":"start VM 140"},{"n":2,"t":"TASK ERROR: PCI device '0000:01:00.0' already in use by VMID '141'"}],"total":2}`,
	})
	res, err := api.StartVM(context.Background(), "pve", 140)
	var tf *TaskFailedError
	if !errors.As(err, &tf) || !errors.Is(err, ErrPCIBusy) {
		t.Fatalf("go-proxmox's Wait returns nil here; we must not: %v", err)
	}
	if res.ExitStatus == "OK" || len(res.LogTail) != 2 || !strings.HasPrefix(res.LogTail[1], "TASK ERROR") {
		t.Fatalf("result = %+v", res)
	}
}

func TestFindVMByIDOrName(t *testing.T) {
	api := canned(t, map[string]string{
		"GET /cluster/resources": `{"data":[{"id":"qemu/140","type":"qemu","vmid":140,"node":"pve","name":"vm-llm-aimachine","status":"running","maxcpu":32,"maxmem":53687091200},
			{"id":"lxc/150","type":"lxc","vmid":150,"node":"pve","name":"ct","status":"running"}]}`,
	})
	ctx := context.Background()
	if r, err := FindVM(ctx, api, 140, ""); err != nil || r.Name != "vm-llm-aimachine" || r.MaxCPU != 32 {
		t.Fatalf("by id: %+v %v", r, err)
	}
	if r, err := FindVM(ctx, api, 0, "vm-llm-aimachine"); err != nil || r.VMID != 140 {
		t.Fatalf("by name: %+v %v", r, err)
	}
	if _, err := FindVM(ctx, api, 150, ""); !errors.Is(err, ErrNotFound) {
		t.Fatalf("a container is not a VM: %v", err)
	}
}
