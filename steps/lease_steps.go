package steps

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/cucumber/godog"

	"github.com/aimachine/aimachine/provision"
)

// The run lease (features/run_lease.feature): one run per VM at a time.

// leaseRun is the first deployment, held in progress by its reporter.
type leaseRun struct {
	runID   string
	holding chan struct{} // closed once it holds the lease
	release chan struct{} // closing it (once) lets the run go on
	once    sync.Once
	done    chan struct{}
	err     error
	second  error // the second deployment's error
	digest  string
}

func (w *World) registerLeaseSteps(sc *godog.ScenarioContext) {
	sc.Given(`^a deployment of "([^"]*)" is in progress in another terminal$`, w.aDeploymentIsInProgress)
	sc.When(`^the administrator starts a second deployment of "([^"]*)"$`, w.aSecondDeployment)
	sc.Then(`^the second deployment is refused, naming the run in progress, its host and how to take over$`, w.theSecondIsRefused)
	sc.Then(`^the second deployment changed nothing on the VM$`, w.theSecondChangedNothing)
	sc.When(`^the first deployment finishes$`, w.theFirstFinishes)
	sc.Then(`^the first deployment completed successfully$`, w.theFirstSucceeded)
	sc.Then(`^a new deployment of "([^"]*)" converges$`, w.aNewDeploymentConverges)
}

// aDeploymentIsInProgress starts an infrastructure deploy that pauses (in its progress
// reporter) right after it has taken the run lease, as a deploy in another terminal would be
// busy converging the VM.
func (w *World) aDeploymentIsInProgress(ctx context.Context, name string) error {
	w.vmName = name
	lr := &leaseRun{runID: provision.NewRunID(), holding: make(chan struct{}), release: make(chan struct{}), done: make(chan struct{})}
	w.lease = lr
	held := false
	rep := provision.ReporterFunc(func(e provision.Event) {
		w.Report(e)
		if !held && strings.HasPrefix(e.Task, "take the run lease") && e.Status == provision.StatusOK {
			held = true
			close(lr.holding)
			<-lr.release
		}
	})
	go func() {
		defer close(lr.done)
		_, lr.err = w.client.Deploy(context.WithoutCancel(ctx), w.dcat, name, provision.DeployOptions{
			RunID: lr.runID, Reporter: rep, InfraOnly: true, SSH: w.sshOpts, AgentTimeout: 10 * time.Minute})
	}()
	select {
	case <-lr.holding:
		return nil
	case <-lr.done:
		return fmt.Errorf("the first deployment ended before it held the lease: %v", lr.err)
	case <-time.After(2 * time.Minute):
		return errors.New("the first deployment did not take the lease within 2 minutes")
	}
}

func (w *World) aSecondDeployment(ctx context.Context, name string) error {
	if w.lease == nil {
		return errors.New("no first deployment is in progress")
	}
	cfg, err := w.config(ctx)
	if err != nil {
		return err
	}
	w.lease.digest = cfg["digest"]
	w.vmName = name
	w.lease.second = w.deploy(ctx, provision.DeployOptions{InfraOnly: true})
	return nil
}

func (w *World) theSecondIsRefused(ctx context.Context) error {
	err := w.lease.second
	if err == nil {
		return errors.New("the second deployment succeeded while the first held the VM")
	}
	host, _ := os.Hostname()
	msg := err.Error()
	for _, want := range []string{"in use by another aimachine run", "run " + w.lease.runID, "since ", "--force-unlock " + w.lease.runID} {
		if !strings.Contains(msg, want) {
			return fmt.Errorf("the refusal lacks %q: %v", want, err)
		}
	}
	if host != "" && !strings.Contains(msg, "host ") {
		return fmt.Errorf("the refusal does not name the host: %v", err)
	}
	var te *provision.TaskError
	if !errors.As(err, &te) || te.Hint == "" {
		return fmt.Errorf("the refusal gives no hint: %v", err)
	}
	return nil
}

// theSecondChangedNothing: the VM's config digest is the one the first run left (the second
// wrote nothing, not even a lease).
func (w *World) theSecondChangedNothing(ctx context.Context) error {
	cfg, err := w.config(ctx)
	if err != nil {
		return err
	}
	if cfg["digest"] != w.lease.digest {
		return fmt.Errorf("the refused deployment changed the config of %s", w.vmName)
	}
	return nil
}

// finish lets the first deployment go on and waits for it (also at the end of a failed scenario).
func (lr *leaseRun) finish(d time.Duration) bool {
	lr.once.Do(func() { close(lr.release) })
	select {
	case <-lr.done:
		return true
	case <-time.After(d):
		return false
	}
}

func (w *World) theFirstFinishes(ctx context.Context) error {
	if !w.lease.finish(5 * time.Minute) {
		return errors.New("the first deployment did not finish within 5 minutes")
	}
	return nil
}

func (w *World) theFirstSucceeded(ctx context.Context) error {
	if w.lease.err != nil {
		return fmt.Errorf("the first deployment failed: %w", w.lease.err)
	}
	return nil
}

func (w *World) aNewDeploymentConverges(ctx context.Context, name string) error {
	w.vmName = name
	if err := w.deploy(ctx, provision.DeployOptions{InfraOnly: true}); err != nil {
		return fmt.Errorf("the deployment after the first one finished: %w", err)
	}
	if w.res.Summary.Changed != 0 {
		return fmt.Errorf("the deployment after the first one changed %d things", w.res.Summary.Changed)
	}
	return nil
}
