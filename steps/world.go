package steps

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/cucumber/godog"

	"github.com/aimachine/aimachine/catalog"
	"github.com/aimachine/aimachine/provision"
	"github.com/aimachine/aimachine/provision/guest"
	"github.com/aimachine/aimachine/provision/pve"
)

// World is the state of one scenario. It is created in Register (once per scenario).
type World struct {
	scenario *godog.Scenario

	// scenario 9
	catalogPath string
	cat         *catalog.Catalog
	vm          *catalog.VM

	// deployment scenarios
	t       *target
	tmp     string
	client  *provision.Client
	dcat    *catalog.Catalog // the catalog deployed (simulator: the tool key as cloud-init key)
	vmName  string
	sshOpts provision.SSHOptions
	secrets []string

	mu     sync.Mutex
	events []provision.Event // progress of every run in this scenario
	log    strings.Builder   // what the scenario did: runs, commands, API reads (redacted)

	plan      *provision.Plan
	res       *provision.DeployResult
	deployErr error
	deploys   int
	runner    guest.Runner // SSH runner the steps use (the deploy's, or a fresh one)
	verify    *provision.VerifyReport
	runs      []runRecord

	lastOut   guest.Result // the last command run by a When step
	before    map[string]string
	statsMark *simMark   // simulator counters just before the run under test (scenarios 6 and 7)
	cfgBefore pve.Config // a VM config the run under test must leave alone (6: VM 140; 7: the GPU holder)

	// scenario 7
	failVM, failGPU, failKind string
	vmidsBefore               map[int]bool

	// scenario 8
	faultFired int
	faultKind  string
	guestErr   error
	guestMark  int    // first event of the last guest phase
	hfToken    string // the Hugging Face token this scenario exported (model_serving.feature)

	operatorState // features/operator_experience.feature
	// host readiness (features/host_readiness.feature)
	rd readinessState
	// run lease (features/run_lease.feature)
	lease      *leaseRun
	fleetState // features/fleet.feature
}

// runRecord is one deploy for the evidence record.
type runRecord struct {
	Started time.Time
	Took    time.Duration
	Err     string
}

// catalogFile is the catalog the scenarios deploy (AIMACHINE_CATALOG, default the sample).
func catalogFile() string {
	if p := os.Getenv("AIMACHINE_CATALOG"); p != "" {
		return p
	}
	return "infrastructure-catalog.yml"
}

// reportsDir is where reports and deploy evidence go (AIMACHINE_REPORTS, default reports).
func reportsDir() string {
	if p := os.Getenv("AIMACHINE_REPORTS"); p != "" {
		return p
	}
	return "reports"
}

// logf appends a line to the scenario log (attached to a failed step), secrets redacted.
func (w *World) logf(format string, args ...any) {
	w.mu.Lock()
	defer w.mu.Unlock()
	fmt.Fprintf(&w.log, "%s ", time.Now().UTC().Format("15:04:05.000"))
	fmt.Fprintf(&w.log, "%s\n", guest.RedactAll(fmt.Sprintf(format, args...), w.secrets))
}

// Report records progress (provision.Reporter).
func (w *World) Report(e provision.Event) {
	w.mu.Lock()
	w.events = append(w.events, e)
	w.mu.Unlock()
	st := string(e.Status)
	if st == "" {
		st = "…"
	}
	w.logf("[%s] %s %s: %s", e.Phase, st, e.Task, e.Message)
}

// eventsSince returns the events recorded after index i.
func (w *World) eventsSince(i int) []provision.Event {
	w.mu.Lock()
	defer w.mu.Unlock()
	return append([]provision.Event(nil), w.events[i:]...)
}

func (w *World) eventCount() int {
	w.mu.Lock()
	defer w.mu.Unlock()
	return len(w.events)
}

// closeRunner closes the step runner (and the deploy's, when it is another one).
func (w *World) closeRunner() {
	if w.runner != nil {
		_ = w.runner.Close()
	}
	if w.res != nil && w.res.Runner != nil && w.res.Runner != w.runner {
		_ = w.res.Runner.Close()
	}
	w.runner = nil
	if w.res != nil {
		w.res.Runner = nil
	}
}

// cleanup runs after the scenario.
func (w *World) cleanup() {
	if w.lease != nil {
		w.lease.finish(5 * time.Minute) // a run held in progress by a failed scenario
		w.lease = nil
	}
	w.closeRunner()
	if w.tmp != "" {
		_ = os.RemoveAll(w.tmp)
	}
}

// setupDeploy prepares the scenario's connection, catalog and SSH options.
func (w *World) setupDeploy(ctx context.Context, t *target) error {
	w.t = t
	if t.simulated() {
		rctx, cancel := context.WithTimeout(ctx, time.Minute)
		defer cancel()
		if err := t.sim.Control().Reset(rctx); err != nil {
			return fmt.Errorf("reset the simulator: %w", err)
		}
	}
	tmp, err := os.MkdirTemp("", "aimachine-scenario-")
	if err != nil {
		return err
	}
	w.tmp = tmp
	o, err := provision.ConnOptionsFromEnv(t.env)
	if err != nil {
		return err
	}
	if t.simulated() && !o.Simulator {
		return errors.New("the simulator's environment must set AIMACHINE_SIMULATOR=1")
	}
	w.secrets = secretsOf(o)
	cctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	c, err := provision.Connect(cctx, o)
	if err != nil {
		return err
	}
	w.client = c
	cat, err := catalog.LoadValid(catalogFile())
	if err != nil {
		return err
	}
	w.dcat = cat
	w.vmName = "vm-llm-aimachine"
	if vm, err := cat.VM(w.vmName); err == nil && vm.VLLMEnabled() {
		for _, env := range []string{vm.Services.VLLM.APIKeyEnv, vm.Services.VLLM.HFTokenEnv} {
			if k := os.Getenv(env); env != "" && k != "" {
				w.secrets = append(w.secrets, secretForms(k)...) // the vLLM API key and HF token never reach a report
			}
		}
	}
	if !t.simulated() {
		w.sshOpts = provision.SSHOptions{
			KeyFile: t.env("AIMACHINE_SSH_KEY"), KnownHostsFile: t.env("AIMACHINE_KNOWN_HOSTS"), Jump: t.env("AIMACHINE_JUMP_HOST"),
		}
		return nil
	}
	e := t.endpoint()
	// Test setup, not a shortcut: the sample catalog's key is a throwaway whose private half is
	// gone; the simulator's guests accept the tool key the simulator generated.
	for i := range cat.VMs {
		if cat.VMs[i].Name == w.vmName {
			cat.VMs[i].CloudInit.SSHKeys = []catalog.SSHKey{{Key: e.SSHPublicKey}}
		}
	}
	kh := filepath.Join(tmp, "known_hosts")
	data, err := os.ReadFile(e.KnownHostsFile) // pins the jump host
	if err != nil {
		return err
	}
	if err := os.WriteFile(kh, data, 0o600); err != nil {
		return err
	}
	w.sshOpts = provision.SSHOptions{KnownHostsFile: kh, KeyFile: e.SSHKeyFile, Jump: e.JumpHost(), Timeout: 2 * time.Minute}
	return nil
}

// secretsOf lists the values never to print, each in the forms it may be printed in.
func secretsOf(o provision.ConnOptions) []string {
	var s []string
	if _, sec, ok := strings.Cut(o.APIToken, "="); ok && sec != "" {
		s = append(s, secretForms(o.APIToken)...)
		s = append(s, secretForms(sec)...)
	}
	if o.Password != "" {
		s = append(s, secretForms(o.Password)...)
	}
	return s
}

// secretForms is v as written, URL-encoded (a form body or query: the ticket login posts the
// password so) and JSON-escaped (a request log), without duplicates.
func secretForms(v string) []string {
	forms := []string{v}
	j, _ := json.Marshal(v)
	for _, f := range []string{url.QueryEscape(v), url.PathEscape(v), strings.Trim(string(j), `"`)} {
		if !slices.Contains(forms, f) {
			forms = append(forms, f)
		}
	}
	return forms
}
