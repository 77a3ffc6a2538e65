package sim_test

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/aimachine/aimachine/fakes/guest"
	"github.com/aimachine/aimachine/fakes/sim/simtest"
	"github.com/aimachine/aimachine/fakes/simclient"
)

// The control client drives the fake API's faults and counters as a go-proxmox user sees them.
func TestControlClient(t *testing.T) {
	s := startSim(t)
	ctl := s.Control()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	c, err := simtest.Client(s.Info(), simtest.Token)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.Version(ctx); err != nil {
		t.Fatal(err)
	}
	if err := ctl.InjectAPIFault(ctx, simclient.APIFault{Method: "GET", Path: "/version", Status: 500, Reason: "got timeout"}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Version(ctx); err == nil || !strings.Contains(err.Error(), "500 got timeout") {
		t.Errorf("Version with an injected fault = %v, want 500 got timeout", err)
	}
	if _, err := c.Version(ctx); err != nil {
		t.Errorf("the fault (count 1) should be used up: %v", err)
	}
	if err := ctl.InjectAPIFault(ctx, simclient.APIFault{Path: "/version", Count: 5}); err != nil {
		t.Fatal(err)
	}
	if err := ctl.ClearAPIFaults(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Version(ctx); err != nil {
		t.Errorf("Version after ClearAPIFaults: %v", err)
	}

	st, err := ctl.Stats(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if got := st.API.ByPath["GET /version"]; got != 4 {
		t.Errorf("GET /version counted %d times, want 4 (stats %+v)", got, st.API)
	}
	if st.API.Faults != 1 || st.API.Mutating != 0 {
		t.Errorf("API stats %+v: want 1 fault, 0 mutating", st.API)
	}
	reqs, err := ctl.Requests(ctx)
	if err != nil || len(reqs) != 4 {
		t.Errorf("Requests = %d records, %v; want 4", len(reqs), err)
	}

	if err := ctl.MarkPCIBusy(ctx, "pve", "0000:01:00.0", 141); err != nil {
		t.Errorf("MarkPCIBusy: %v", err)
	}
	if err := ctl.ReleasePCI(ctx, "pve", "0000:01:00.0"); err != nil {
		t.Errorf("ReleasePCI: %v", err)
	}
	if err := ctl.SetIOMMU(ctx, "pve", false); err != nil {
		t.Errorf("SetIOMMU: %v", err)
	}
	if err := ctl.MarkPCIBusyAfter(ctx, "pve", "0000:01:00.0", 141, "qmcreate"); err != nil {
		t.Errorf("MarkPCIBusyAfter: %v", err)
	}
	if err := ctl.SetLock(ctx, 141, "backup"); err != nil {
		t.Errorf("SetLock: %v", err)
	}
	if err := ctl.SetPCIFault(ctx, "pve", "0000:01:00.0", simclient.PCIFaultVFIOBind); err != nil {
		t.Errorf("SetPCIFault: %v", err)
	}
	if err := ctl.SetVMFault(ctx, 141, simclient.VMFaultKVMTimeout); err != nil {
		t.Errorf("SetVMFault: %v", err)
	}
	if err := ctl.KillQEMU(ctx, 141); err == nil || !strings.Contains(err.Error(), "not running") {
		t.Errorf("KillQEMU of the stopped VM 141 = %v, want an error saying it is not running", err)
	}
	var ce *simclient.Error
	if err := ctl.SetIOMMU(ctx, "nope", true); !errors.As(err, &ce) || ce.Status != http.StatusBadRequest || !strings.Contains(ce.Message, "nope") {
		t.Errorf("SetIOMMU on an unknown node = %v, want a 400 naming the node", err)
	}

	if err := ctl.Reset(ctx); err != nil {
		t.Fatal(err)
	}
	st, err = ctl.Stats(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if st.API.Total != 0 || st.Jump.Connections != 0 {
		t.Errorf("stats after Reset = %+v, want zero", st)
	}
}

// simclient's fault kind constants must name every kind fakes/guest knows, and inject round-trips.
func TestGuestFaultsThroughControl(t *testing.T) {
	s := startSim(t)
	ctl := s.Control()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	mine := map[string]bool{}
	for _, k := range []string{simclient.FaultDKMSBuild, simclient.FaultMissingHeaders, simclient.FaultNoPrebuiltModules, simclient.FaultSecureBoot,
		simclient.FaultApt404, simclient.FaultDpkgLock, simclient.FaultDriverConflict, simclient.FaultVLLMOOM,
		simclient.FaultSSHDrop, simclient.FaultSlowBoot, simclient.FaultAgentNeverStarts,
		simclient.FaultCloudInitDegraded, simclient.FaultCloudInitCrash, simclient.FaultHubSlow, simclient.FaultHubDrop, simclient.FaultDiskFull} {
		mine[k] = true
	}
	for k := range guest.FaultKinds() {
		if !mine[k] {
			t.Errorf("fakes/guest fault kind %q has no simclient constant", k)
		}
		delete(mine, k)
	}
	for k := range mine {
		t.Errorf("simclient constant %q names no fakes/guest fault kind", k)
	}

	f, err := ctl.InjectGuestFault(ctx, simclient.GuestFault{Kind: simclient.FaultApt404, Pattern: "nvidia-utils-*", VMID: 140})
	if err != nil {
		t.Fatal(err)
	}
	if f.ID == 0 || f.Kind != simclient.FaultApt404 {
		t.Errorf("injected fault = %+v, want an id", f)
	}
	list, kinds, err := ctl.GuestFaults(ctx)
	if err != nil || len(list) != 1 || list[0].Pattern != "nvidia-utils-*" || kinds[simclient.FaultApt404] == "" {
		t.Errorf("GuestFaults = %+v, %v, %v", list, kinds, err)
	}
	var ce *simclient.Error
	if _, err := ctl.InjectGuestFault(ctx, simclient.GuestFault{Kind: "no-such-kind"}); !errors.As(err, &ce) || ce.Status != 400 || !strings.Contains(ce.Message, "unknown fault kind") {
		t.Errorf("unknown kind = %v, want a 400 naming the problem", err)
	}
	if err := ctl.ClearFaults(ctx); err != nil {
		t.Fatal(err)
	}
	if list, _, _ := ctl.GuestFaults(ctx); len(list) != 0 {
		t.Errorf("faults after ClearFaults = %+v", list)
	}
	if guests, err := ctl.Guests(ctx); err != nil || len(guests) != 0 {
		t.Errorf("Guests on a fresh simulator = %+v, %v; want none", guests, err)
	}
}
