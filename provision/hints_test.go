package provision

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/aimachine/aimachine/catalog"
	fakepve "github.com/aimachine/aimachine/fakes/pve"
	"github.com/aimachine/aimachine/provision/guest"
)

// TestStartFailureHintsNameTheRealCause: one row per way the start task fails on the host
// (texts from qemu-server: PCI.pm prepare_pci_device, QemuServer.pm vm_start), each set up
// in the fake, and the hint must name that cause, not a neighbour's.
func TestStartFailureHintsNameTheRealCause(t *testing.T) {
	for _, tc := range []struct {
		name   string
		setup  func(e *env)
		inErr  string
		inHint []string
		notIn  string
	}{
		{"vfio bind", func(e *env) {
			if err := e.srv.SetPCIFault("pve", fakepve.DefaultGPUID, fakepve.PCIFaultVFIOBind); err != nil {
				e.t.Fatal(err)
			}
		}, "can't unbind/bind PCI group to VFIO", []string{"vfio-pci", "Kernel driver in use"}, "intel_iommu"},
		{"kvm start timeout", func(e *env) {
			if err := e.srv.SetVMFault(140, fakepve.VMFaultKVMTimeout); err != nil {
				e.t.Fatal(err)
			}
		}, "got timeout", []string{"QEMU did not come up", "memory"}, "pveproxy"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t)
			tc.setup(e)
			_, err := e.c.Deploy(context.Background(), e.cat, vm140, e.opts())
			var te *TaskError
			if !errors.As(err, &te) {
				t.Fatalf("err = %v, want a TaskError", err)
			}
			t.Logf("error: %v\nhint: %s", err, te.Hint)
			if !strings.Contains(err.Error(), tc.inErr) {
				t.Errorf("error lacks %q", tc.inErr)
			}
			for _, h := range tc.inHint {
				if !strings.Contains(te.Hint, h) {
					t.Errorf("hint lacks %q", h)
				}
			}
			if strings.Contains(te.Hint, tc.notIn) {
				t.Errorf("hint names %q, not this failure's cause", tc.notIn)
			}
		})
	}
}

// TestGuestHintsNameTheRealCause: a guest-phase failure no task explained gets a hint for
// its class: an SSH drop names the VM's side and the path, never an API call to make.
func TestGuestHintsNameTheRealCause(t *testing.T) {
	cat, err := catalog.LoadValid("testdata/catalog.yml")
	if err != nil {
		t.Fatal(err)
	}
	vm, err := cat.VM(vm140)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		err  error
		want string
	}{
		{"SSH drop", fmt.Errorf("%q on 192.168.0.140:22: %w: EOF; reconnecting failed: dial tcp: i/o timeout", "apt-get install", guest.ErrConnectionLost),
			"the SSH connection to VM 140 (192.168.0.140) dropped during the task and did not come back"},
		{"host key mismatch keeps its own hint", fmt.Errorf("%w: HOST KEY MISMATCH (hint: …)", guest.ErrHostKey), ""},
		{"deadline", fmt.Errorf("wait: %w", context.DeadlineExceeded), "ran out of time"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := guestHint(tc.err, vm)
			if (tc.want == "") != (got == "") || !strings.Contains(got, tc.want) {
				t.Errorf("hint %q, want %q", got, tc.want)
			}
		})
	}
}

// TestGuestFailureHintsInARun: the same causes reached through a guest phase run (the
// scripted guest): a connection that drops and does not come back, and nouveau still owning
// the GPU after the reboot meant to free it (a driver conflict).
func TestGuestFailureHintsInARun(t *testing.T) {
	for _, tc := range []struct {
		name   string
		inject func(*scriptedGuest)
		hint   string
	}{
		{"SSH drop without a way back", func(g *scriptedGuest) {
			g.dropOn = "pip install"
			g.reconnectErr = errors.New("dial tcp 192.168.0.140:22: i/o timeout")
		}, "the SSH connection to VM 140 (192.168.0.140) dropped during the task and did not come back"},
		{"driver conflict: nouveau survives the reboot", func(g *scriptedGuest) { g.nouveau, g.nouveauStays = true, true },
			"nouveau (or another framebuffer driver) owns the GPU"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, vm := guestTestVM()
			g := newScriptedGuest()
			tc.inject(g)
			_, err := RunGuestPhase(context.Background(), g, c, vm, guestTestOpts(t, nil))
			var te *TaskError
			if !errors.As(err, &te) {
				t.Fatalf("err = %v, want a TaskError", err)
			}
			if !strings.Contains(te.Hint, tc.hint) {
				t.Errorf("task %q: hint %q\nwant %q\n(error: %v)", te.Task, te.Hint, tc.hint, te.Err)
			}
		})
	}
}
