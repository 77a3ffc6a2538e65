package steps

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/aimachine/aimachine/catalog"
	"github.com/aimachine/aimachine/provision"
)

// The rollback step must not accept the wrong outcome for an example: the busy race happens after
// the create (a run that never created the VM did not test the rollback), and a missing device is
// the preflight's to refuse (a run that created the VM wrote to the host for nothing).
func TestRolledBackOrNeverCreatedRejectsTheWrongPath(t *testing.T) {
	cat := &catalog.Catalog{VMs: []catalog.VM{{ID: 140, Name: "vm-llm-aimachine", Node: "pve"}}}
	cases := []struct {
		kind string
		res  *provision.DeployResult
		want string
	}{
		{"busy", nil, "must reach PVE's start task"},
		{"busy", &provision.DeployResult{}, "must reach PVE's start task"},
		{"missing", &provision.DeployResult{Created: true, RolledBack: true}, "preflight should refuse first"},
	}
	for _, c := range cases {
		w := &World{dcat: cat, vmName: "vm-llm-aimachine", failKind: c.kind, failGPU: "0000:01:00",
			res: c.res, deployErr: errors.New("deploy failed")}
		err := w.theVMIsRolledBackOrNeverCreated(context.Background())
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s, created=%v: err = %v, want one saying %q", c.kind, c.res != nil && c.res.Created, err, c.want)
		}
	}
}
