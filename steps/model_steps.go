package steps

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/cucumber/godog"

	"github.com/aimachine/aimachine/catalog"
	"github.com/aimachine/aimachine/provision"
)

// Models on disk before the services start (features/model_serving.feature) and the
// completions of scenarios 4 and 5.

// simHFToken is the variable the gated-model scenario names in the catalog; the token value
// is made up per scenario (the simulated Hub accepts any hf_… token).
const simHFToken = "AIMACHINE_SIM_HF_TOKEN"

func (w *World) registerModelSteps(sc *godog.ScenarioContext) {
	sc.Then(`^vLLM answers a chat completion on the GPU$`, w.vllmAnswersOnTheGPU)
	sc.Then(`^each Ollama model answers a chat completion on the GPU$`, w.ollamaAnswersOnTheGPU)

	sc.Given(`^the catalog gives vLLM the (?:gated )?model "([^"]*)"$`, w.theCatalogGivesTheModel)
	sc.Given(`^no Hugging Face token is configured$`, w.noHFToken)
	sc.When(`^the administrator deploys "([^"]*)"$`, w.theAdministratorDeploys)
	sc.Then(`^the deployment stops at the task "([^"]*)"$`, w.theDeploymentStopsAt)
	sc.Then(`^the error says "([^"]*)"$`, w.theErrorSays)
	sc.Then(`^the hint names "([^"]*)"$`, w.theHintNames)
	sc.Then(`^vLLM was never started$`, w.vllmWasNeverStarted)
	sc.Then(`^the model was never downloaded$`, w.theModelWasNeverDownloaded)
	sc.When(`^a Hugging Face token is exported in the variable the catalog names and the deployment runs again$`, w.aTokenIsExportedAndItRunsAgain)
	sc.Then(`^the deployment succeeds$`, w.theDeploymentSucceeds)
	sc.Then(`^the token appears in no output, report or guest command line$`, w.theTokenAppearsNowhere)
	sc.After(func(ctx context.Context, _ *godog.Scenario, err error) (context.Context, error) {
		if w.hfToken != "" {
			os.Unsetenv(simHFToken)
		}
		return ctx, err
	})
}

func (w *World) vllmAnswersOnTheGPU(ctx context.Context) error {
	return w.check(ctx, "vLLM answers a chat completion on the GPU")
}

func (w *World) ollamaAnswersOnTheGPU(ctx context.Context) error {
	rep, err := w.verifyReport(ctx)
	if err != nil {
		return err
	}
	vm, err := w.dcat.VM(w.vmName)
	if err != nil {
		return err
	}
	if len(vm.Services.Ollama.Models) == 0 {
		return errors.New("the catalog lists no services.ollama.models: nothing to ask")
	}
	for _, m := range vm.Services.Ollama.Models {
		name := "Ollama " + m + " answers a chat completion on the GPU"
		c, ok := rep.Check(name)
		if !ok {
			return fmt.Errorf("no verification check %q", name)
		}
		if !c.Pass {
			return fmt.Errorf("verification %q failed: %s", name, c.Evidence)
		}
		w.logf("%s: %s", name, c.Evidence)
	}
	return nil
}

func (w *World) vllmSection() (*catalog.VLLM, error) {
	vm, err := w.dcat.VM(w.vmName)
	if err != nil {
		return nil, err
	}
	if !vm.VLLMEnabled() {
		return nil, fmt.Errorf("%s has no vLLM in the catalog", w.vmName)
	}
	return vm.Services.VLLM, nil
}

func (w *World) theCatalogGivesTheModel(model string) error {
	v, err := w.vllmSection()
	if err != nil {
		return err
	}
	v.Model = model
	return nil
}

func (w *World) noHFToken() error {
	v, err := w.vllmSection()
	if err != nil {
		return err
	}
	v.HFTokenEnv = ""
	return nil
}

// theAdministratorDeploys runs the deployment and keeps its outcome for the Then steps (a
// failure is what some scenarios expect).
func (w *World) theAdministratorDeploys(ctx context.Context, name string) error {
	w.vmName = name
	w.verify = nil
	w.deploy(ctx, provision.DeployOptions{})
	return nil
}

func (w *World) taskError() (*provision.TaskError, error) {
	if w.deployErr == nil {
		return nil, errors.New("the deployment succeeded, want it to stop")
	}
	var te *provision.TaskError
	if !errors.As(w.deployErr, &te) {
		return nil, fmt.Errorf("the deployment failed without naming a task: %v", w.deployErr)
	}
	return te, nil
}

func (w *World) theDeploymentStopsAt(task string) error {
	te, err := w.taskError()
	if err != nil {
		return err
	}
	if te.Task != task {
		return fmt.Errorf("the deployment stopped at %q, want %q: %v", te.Task, task, te.Err)
	}
	return nil
}

func (w *World) theErrorSays(text string) error {
	te, err := w.taskError()
	if err != nil {
		return err
	}
	if !strings.Contains(te.Err.Error(), text) {
		return fmt.Errorf("the error %q does not say %q", te.Err, text)
	}
	return nil
}

func (w *World) theHintNames(text string) error {
	te, err := w.taskError()
	if err != nil {
		return err
	}
	if !strings.Contains(te.Hint, text) {
		return fmt.Errorf("the hint %q does not name %q", te.Hint, text)
	}
	return nil
}

func (w *World) vllmWasNeverStarted(ctx context.Context) error {
	out, err := w.sh(ctx, "systemctl show -p ActiveState -p NRestarts -p ExecMainStartTimestampMonotonic vllm")
	if err != nil {
		return err
	}
	if !strings.Contains(out, "ActiveState=inactive") || !strings.Contains(out, "NRestarts=0") {
		return fmt.Errorf("vLLM was started:\n%s", out)
	}
	return nil
}

// theModelWasNeverDownloaded: no file of the catalog's vLLM model is in its models directory
// (the Hub cache layout, models--ORG--NAME; /opt/models when the catalog names none).
func (w *World) theModelWasNeverDownloaded(ctx context.Context) error {
	v, err := w.vllmSection()
	if err != nil {
		return err
	}
	dir := v.ModelsDir
	if dir == "" {
		dir = "/opt/models"
	}
	repo := dir + "/models--" + strings.ReplaceAll(v.Model, "/", "--")
	out, err := w.sh(ctx, "sudo ls -A '"+repo+"' 2>/dev/null | wc -l")
	if err != nil {
		return err
	}
	if strings.TrimSpace(out) != "0" {
		listing, _ := w.sh(ctx, "sudo ls -laR '"+repo+"'")
		return fmt.Errorf("%s holds a download:\n%s", repo, listing)
	}
	return nil
}

func (w *World) aTokenIsExportedAndItRunsAgain(ctx context.Context) error {
	v, err := w.vllmSection()
	if err != nil {
		return err
	}
	w.hfToken = "hf_aimachineSim" + strings.ReplaceAll(fmt.Sprint(os.Getpid(), w.deploys), " ", "")
	os.Setenv(simHFToken, w.hfToken)
	w.secrets = append(w.secrets, secretForms(w.hfToken)...)
	v.HFTokenEnv = simHFToken
	w.closeRunner()
	w.verify = nil
	w.deploy(ctx, provision.DeployOptions{})
	return nil
}

func (w *World) theDeploymentSucceeds(ctx context.Context) error {
	if err := w.deployOK(); err != nil {
		return err
	}
	return w.verifyPasses(ctx)
}

// theTokenAppearsNowhere greps what a user or a log reader sees: the progress events, the
// errors, every report file, and (simulator) every command line the guest ran.
func (w *World) theTokenAppearsNowhere(ctx context.Context) error {
	tok := w.hfToken
	if tok == "" {
		return errors.New("no token was exported in this scenario")
	}
	var where []string
	for _, e := range w.eventsSince(0) {
		if strings.Contains(e.Message+e.Task, tok) {
			where = append(where, "progress event "+e.Task)
		}
	}
	for _, r := range w.runs {
		if strings.Contains(r.Err, tok) {
			where = append(where, "a deploy error")
		}
	}
	if w.deployErr != nil && strings.Contains(w.deployErr.Error(), tok) {
		where = append(where, "the last deploy error")
	}
	files := 0
	filepath.WalkDir(reportsDir(), func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return nil
		}
		files++
		if b, err := os.ReadFile(p); err == nil && strings.Contains(string(b), tok) {
			where = append(where, p)
		}
		return nil
	})
	if files == 0 {
		return fmt.Errorf("no report files under %s to search", reportsDir())
	}
	if w.t.simulated() {
		vm, err := w.dcat.VM(w.vmName)
		if err != nil {
			return err
		}
		lines, err := w.t.sim.Control().GuestCommandLines(ctx, vm.ID)
		if err != nil {
			return err
		}
		hfRan := false
		for _, l := range lines {
			hfRan = hfRan || strings.Contains(l, "/bin/hf download")
			if strings.Contains(l, tok) {
				where = append(where, "guest command line: "+strings.ReplaceAll(l, tok, "<token>"))
			}
		}
		if !hfRan {
			return fmt.Errorf("the guest's %d command lines show no hf download: nothing proven", len(lines))
		}
	}
	if len(where) > 0 {
		return fmt.Errorf("the Hugging Face token appears in: %s", strings.Join(where, "; "))
	}
	return nil
}
