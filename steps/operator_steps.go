package steps

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"errors"
	"fmt"
	"os"
	"strings"

	"github.com/cucumber/godog"
	"golang.org/x/crypto/ssh"

	"github.com/aimachine/aimachine/catalog"
	"github.com/aimachine/aimachine/provision"
)

// operatorState is the World's part for features/operator_experience.feature.
type operatorState struct {
	gplan      *provision.GuestPlan
	planMut    int // mutating API calls the last plan made (simulator)
	khBefore   []byte
	keysBefore []catalog.SSHKey
}

// driftFile is a file the guest phase writes ("load nvidia_uvm at boot").
const (
	driftFile = "/etc/modules-load.d/nvidia-uvm.conf"
	driftTask = "load nvidia_uvm at boot"
)

func (w *World) registerOperatorSteps(sc *godog.ScenarioContext) {
	sc.When(`^the administrator plans the deployment of "([^"]*)"$`, w.theAdministratorPlans)
	sc.Then(`^the plan creates the VM and says the guest phase runs in full$`, w.thePlanCreatesTheVM)
	sc.Then(`^the plan has no changes and every guest task is in place$`, w.thePlanHasNoChanges)
	sc.When(`^a guest file the deployment manages is removed$`, w.aManagedGuestFileIsRemoved)
	sc.Then(`^the plan names the one guest task that would put it back$`, w.thePlanNamesTheDriftTask)
	sc.Then(`^planning changed nothing on the host or in the guest$`, w.planningChangedNothing)
	sc.Given(`^the catalog gives "([^"]*)" a cloud-init key the administrator does not hold$`, w.theCatalogGivesAForeignKey)
	sc.When(`^the administrator runs the deployment of "([^"]*)" and it cannot log in$`, w.theDeploymentCannotLogIn)
	sc.Then(`^the VM this run created is rolled back$`, w.theVMIsRolledBack)
	sc.Then(`^known_hosts is byte for byte as it was before the run$`, w.knownHostsIsAsBefore)
	sc.When(`^the catalog gives "([^"]*)" the administrator's key again$`, w.theCatalogGivesTheKeyAgain)
	sc.Then(`^the deployment pinned the new VM's host key without replacing one$`, w.theDeploymentPinnedTheKey)
}

func (w *World) mutatingCalls(ctx context.Context) (int, error) {
	if !w.t.simulated() {
		return 0, errNoSimulator
	}
	st, err := w.t.sim.Control().Stats(ctx)
	if err != nil {
		return 0, err
	}
	return st.API.Mutating, nil
}

// theAdministratorPlans is `aimachine plan NAME`: the infrastructure plan and the guest
// phase's read-only checks.
func (w *World) theAdministratorPlans(ctx context.Context, name string) error {
	w.vmName = name
	before, err := w.mutatingCalls(ctx)
	if err != nil {
		return err
	}
	p, err := w.client.Plan(ctx, w.dcat, name)
	if err != nil {
		return fmt.Errorf("plan %s: %w", name, err)
	}
	gp, err := w.client.PlanGuest(ctx, w.dcat, p, w.sshOpts, provision.GuestOptions{})
	if err != nil {
		return fmt.Errorf("plan the guest phase of %s: %w", name, err)
	}
	after, err := w.mutatingCalls(ctx)
	if err != nil {
		return err
	}
	w.plan, w.gplan, w.planMut = p, gp, after-before
	w.logf("plan:\n%s\nguest: %+v", p.String(), *gp)
	return nil
}

func (w *World) thePlanCreatesTheVM() error {
	if w.plan.Exists || w.plan.Actions[0].Kind != provision.ActionCreate {
		return fmt.Errorf("the plan does not create the VM:\n%s", w.plan)
	}
	if w.gplan.Checked || !w.gplan.Unknown || w.gplan.Changes() != 1 || !strings.Contains(w.gplan.Reason, "does not exist yet") {
		return fmt.Errorf("the guest plan does not say the guest phase runs in full: %+v", *w.gplan)
	}
	return nil
}

func (w *World) thePlanHasNoChanges() error {
	if n := w.plan.Changes(); n != 0 {
		return fmt.Errorf("%d infrastructure changes after the deploy:\n%s", n, w.plan)
	}
	if !w.gplan.Checked || len(w.gplan.Tasks) < 5 {
		return fmt.Errorf("the guest phase was not examined: %+v", *w.gplan)
	}
	for _, t := range w.gplan.Tasks {
		if t.Change || t.Err != "" {
			return fmt.Errorf("guest task %q not in place after the deploy: %+v", t.Task, t)
		}
	}
	return nil
}

func (w *World) aManagedGuestFileIsRemoved(ctx context.Context) error {
	r, err := w.ssh(ctx)
	if err != nil {
		return err
	}
	_, err = r.Run(ctx, "sudo rm -f "+driftFile)
	w.closeRunner()
	return err
}

func (w *World) thePlanNamesTheDriftTask() error {
	var changed []string
	for _, t := range w.gplan.Tasks {
		if t.Change {
			changed = append(changed, t.Task)
		}
	}
	if len(changed) != 1 || changed[0] != driftTask || w.plan.Changes() != 0 {
		return fmt.Errorf("want only %q to change, the plan says %q (infrastructure: %d changes)", driftTask, changed, w.plan.Changes())
	}
	return nil
}

// planningChangedNothing: no mutating API call, and the guest drift is still there.
func (w *World) planningChangedNothing(ctx context.Context) error {
	if w.planMut != 0 {
		return fmt.Errorf("planning made %d mutating API calls", w.planMut)
	}
	r, err := w.ssh(ctx)
	if err != nil {
		return err
	}
	res, err := r.Run(ctx, "test -e "+driftFile+" && echo present || echo absent")
	w.closeRunner()
	if err != nil {
		return err
	}
	if strings.TrimSpace(res.Stdout) != "absent" {
		return fmt.Errorf("planning put %s back: plan must only read", driftFile)
	}
	return nil
}

func (w *World) theCatalogGivesAForeignKey(name string) error {
	vm, err := w.dcat.VM(name)
	if err != nil {
		return err
	}
	pub, _, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return err
	}
	sp, err := ssh.NewPublicKey(pub)
	if err != nil {
		return err
	}
	w.keysBefore = vm.CloudInit.SSHKeys
	vm.CloudInit.SSHKeys = []catalog.SSHKey{{Key: strings.TrimSpace(string(ssh.MarshalAuthorizedKey(sp))) + " someone-else"}}
	return nil
}

func (w *World) theCatalogGivesTheKeyAgain(name string) error {
	vm, err := w.dcat.VM(name)
	if err != nil {
		return err
	}
	if w.keysBefore == nil {
		return errors.New("the catalog's key was not changed before")
	}
	vm.CloudInit.SSHKeys = w.keysBefore
	return nil
}

func (w *World) theDeploymentCannotLogIn(ctx context.Context, name string) error {
	w.vmName = name
	kh, err := os.ReadFile(w.sshOpts.KnownHostsFile)
	if err != nil {
		return err
	}
	w.khBefore = kh
	err = w.deploy(ctx, provision.DeployOptions{})
	var te *provision.TaskError
	if err == nil || !errors.As(err, &te) || !strings.HasPrefix(te.Task, "connect over SSH") {
		return fmt.Errorf("want the deploy to fail logging in over SSH, got %v", err)
	}
	return nil
}

func (w *World) theVMIsRolledBack() error {
	if w.res == nil || !w.res.Created || !w.res.RolledBack {
		return fmt.Errorf("the VM this run created was not rolled back: %+v (%v)", w.res, w.deployErr)
	}
	return nil
}

func (w *World) knownHostsIsAsBefore() error {
	now, err := os.ReadFile(w.sshOpts.KnownHostsFile)
	if err != nil {
		return err
	}
	if !bytes.Equal(now, w.khBefore) {
		return fmt.Errorf("known_hosts after the rollback:\n%s\nbefore the run:\n%s", now, w.khBefore)
	}
	return nil
}

func (w *World) theDeploymentPinnedTheKey() error {
	if w.deployErr != nil {
		return fmt.Errorf("the deploy failed: %w", w.deployErr)
	}
	if w.sshOpts.ReplaceHostKey {
		return errors.New("the deploy ran with --replace-host-key")
	}
	for _, e := range w.eventsSince(0) {
		if e.Task == "pin SSH host key" && e.Status == provision.StatusChanged && strings.Contains(e.Message, "pinned for") {
			return nil
		}
	}
	return errors.New("no deploy pinned the new VM's host key")
}
