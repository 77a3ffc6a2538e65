package main

import (
	"context"
	"testing"
)

// plan and a re-run deploy begin the SSH dial before the API login and use that connection:
// the jump host and the guest each see one SSH connection per command (a dial that was thrown
// away and made again would show two).
func TestPlanAndReRunUseTheEarlySSHDial(t *testing.T) {
	s, _ := onProxiedSimulator(t)
	if code, out, errOut := runArgs("deploy", "vm-llm-aimachine"); code != 0 {
		t.Fatalf("first deploy: exit %d\n%s\n%s", code, out, errOut)
	}
	ctx := context.Background()
	for _, args := range [][]string{{"plan", "vm-llm-aimachine"}, {"deploy", "vm-llm-aimachine"}} {
		before, err := s.Control().Stats(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if code, out, errOut := runArgs(args...); code != 0 {
			t.Fatalf("%v: exit %d\n%s\n%s", args, code, out, errOut)
		}
		after, err := s.Control().Stats(ctx)
		if err != nil {
			t.Fatal(err)
		}
		jump, guest := after.Jump.Connections-before.Jump.Connections, after.Guest.SSHConnections-before.Guest.SSHConnections
		if jump != 1 || guest != 1 {
			t.Errorf("%v: %d SSH connections to the jump host and %d to the guest, want 1 and 1", args, jump, guest)
		}
	}
}
