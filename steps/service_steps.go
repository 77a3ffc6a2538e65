package steps

import (
	"context"
	"fmt"
	"net"
	"strconv"
	"strings"

	"github.com/cucumber/godog"

	"github.com/aimachine/aimachine/provision"
)

func (w *World) registerServiceSteps(sc *godog.ScenarioContext) {
	// Scenario 4
	sc.Given(`^the NVIDIA driver and CUDA are installed on "([^"]*)"$`, w.theDriverAndCUDAAreInstalled)
	sc.Given(`^a Python virtual environment is configured$`, w.aVenvIsConfigured)
	sc.When(`^the vLLM installation and configuration tasks run$`, w.theVLLMTasksRun)
	sc.Then(`^vLLM is installed in the Python virtual environment \(AC-17\)$`, w.vllmIsInTheVenv)
	sc.Then(`^the vLLM API server is running \(AC-18\)$`, w.theVLLMServerIsRunning)
	sc.Then(`^the health endpoint answers 200 on the VM's private address and port (\d+) \(AC-19\)$`, w.theHealthEndpointAnswers)
	sc.Then(`^vLLM uses the GPU \(AC-20\)$`, w.vllmUsesTheGPU)
	sc.Then(`^the systemd service "([^"]*)" exists, is enabled and restarts on failure \(AC-21\)$`, w.theServiceIsEnabledAndRestarts)

	// Scenario 5
	sc.Given(`^the NVIDIA driver is installed on "([^"]*)"$`, w.theDriverIsInstalledOn)
	sc.When(`^the Ollama installation tasks run$`, w.theOllamaTasksRun)
	sc.Then(`^the ollama CLI is in the PATH \(AC-22\)$`, w.ollamaIsInPath)
	sc.Then(`^"ollama --version" works \(AC-23\)$`, w.ollamaVersionWorks)
	sc.Then(`^the "([^"]*)" service is running \(AC-24\)$`, w.theServiceIsRunning)
	sc.Then(`^"ollama list" works \(AC-25\)$`, w.ollamaListWorks)
	sc.Then(`^Ollama uses the GPU \(AC-26\)$`, w.ollamaUsesTheGPU)
}

// The services are installed by the guest phase, which installs the driver and CUDA first and
// stops at the first failure. The Given steps deploy the VM (driver, CUDA, services); the When
// steps run the guest phase again over the same SSH connection, as a re-run of
// `aimachine deploy` would, and record what the service tasks reported.

func (w *World) theDriverAndCUDAAreInstalled(ctx context.Context, name string) error {
	w.vmName = name
	if err := w.ensureDeployed(ctx); err != nil {
		return err
	}
	if err := w.check(ctx, "the loaded module is the open kernel module"); err != nil {
		return err
	}
	return w.check(ctx, "nvcc is CUDA")
}

func (w *World) aVenvIsConfigured(ctx context.Context) error {
	out, err := w.sh(ctx, "cat /opt/vllm/venv/pyvenv.cfg && /opt/vllm/venv/bin/python --version")
	if err != nil {
		return err
	}
	if !strings.Contains(out, "Python 3.") {
		return fmt.Errorf("/opt/vllm/venv is not a Python 3 virtual environment:\n%s", out)
	}
	return nil
}

// runServiceTasks runs the guest phase and requires tasks whose names contain keyword to
// have been reported ok or changed.
func (w *World) runServiceTasks(ctx context.Context, keyword string) error {
	r, err := w.ssh(ctx)
	if err != nil {
		return err
	}
	vm, err := w.dcat.VM(w.vmName)
	if err != nil {
		return err
	}
	mark := w.eventCount()
	_, err = provision.RunGuestPhase(ctx, r, w.dcat, vm, provision.GuestOptions{Reporter: w, ReportDir: reportsDir()})
	w.guestErr = err
	if err != nil {
		return fmt.Errorf("guest phase: %w", err)
	}
	var ran []string
	for _, e := range w.eventsSince(mark) {
		if e.Status != "" && strings.Contains(strings.ToLower(e.Task), keyword) {
			ran = append(ran, fmt.Sprintf("%s (%s)", e.Task, e.Status))
		}
	}
	if len(ran) == 0 {
		return fmt.Errorf("the guest phase ran no %s task", keyword)
	}
	w.logf("%s tasks: %s", keyword, strings.Join(ran, "; "))
	w.verify = nil
	return nil
}

func (w *World) theVLLMTasksRun(ctx context.Context) error { return w.runServiceTasks(ctx, "vllm") }

func (w *World) vllmIsInTheVenv(ctx context.Context) error {
	vm, _ := w.dcat.VM(w.vmName)
	out, err := w.sh(ctx, "/opt/vllm/venv/bin/python -m pip show vllm")
	if err != nil {
		return err
	}
	want := vm.Services.VLLM.Version
	if want == "" {
		want = provision.DefaultVLLMVersion
	}
	if !strings.Contains(out, "Version: "+want) {
		return fmt.Errorf("pip show vllm in /opt/vllm/venv is not version %s:\n%s", want, out)
	}
	return nil
}

func (w *World) theVLLMServerIsRunning(ctx context.Context) error {
	return w.theServiceIsRunning(ctx, "vllm")
}

func (w *World) theHealthEndpointAnswers(ctx context.Context, port int) error {
	vm, _ := w.dcat.VM(w.vmName)
	// curl runs inside the VM: the test never dials the VM's private address itself.
	url := "http://" + net.JoinHostPort(vm.IP(), strconv.Itoa(port)) + "/health"
	out, err := w.sh(ctx, "curl -s -o /dev/null -w '%{http_code}' --max-time 10 "+url)
	if err != nil {
		return err
	}
	if strings.TrimSpace(out) != "200" {
		return fmt.Errorf("GET %s answered %q, want 200", url, strings.TrimSpace(out))
	}
	return nil
}

func (w *World) vllmUsesTheGPU(ctx context.Context) error {
	return w.check(ctx, "vLLM holds GPU memory")
}

func (w *World) theServiceIsEnabledAndRestarts(ctx context.Context, unit string) error {
	out, err := w.sh(ctx, "systemctl show -p LoadState,UnitFileState,Restart "+unit)
	if err != nil {
		return err
	}
	for _, want := range []string{"LoadState=loaded", "UnitFileState=enabled", "Restart=on-failure"} {
		if !strings.Contains(out, want) {
			return fmt.Errorf("systemctl show %s lacks %s:\n%s", unit, want, out)
		}
	}
	return nil
}

// ---- scenario 5 ----

func (w *World) theDriverIsInstalledOn(ctx context.Context, name string) error {
	w.vmName = name
	if err := w.ensureDeployed(ctx); err != nil {
		return err
	}
	return w.theNVIDIADriversAreInstalled(ctx)
}

func (w *World) theOllamaTasksRun(ctx context.Context) error { return w.runServiceTasks(ctx, "ollama") }

func (w *World) ollamaIsInPath(ctx context.Context) error {
	_, err := w.sh(ctx, "command -v ollama")
	return err
}

// ollamaEnv points the CLI at the server's bind address (it is not on 127.0.0.1 by default).
func (w *World) ollamaEnv() string {
	vm, _ := w.dcat.VM(w.vmName)
	o := vm.Services.Ollama
	host := vm.IP()
	if len(o.Bind) > 0 {
		host = o.Bind[0]
	}
	port := o.Port
	if port == 0 {
		port = 11434
	}
	return "OLLAMA_HOST=" + net.JoinHostPort(host, strconv.Itoa(port)) + " "
}

func (w *World) ollamaVersionWorks(ctx context.Context) error {
	out, err := w.sh(ctx, w.ollamaEnv()+"ollama --version 2>&1")
	if err != nil {
		return err
	}
	if !strings.Contains(out, "ollama version is") || strings.Contains(out, "could not connect") {
		return fmt.Errorf("ollama --version:\n%s", out)
	}
	return nil
}

func (w *World) theServiceIsRunning(ctx context.Context, unit string) error {
	out, err := w.sh(ctx, "systemctl show -p ActiveState,SubState,MainPID "+unit)
	if err != nil {
		return err
	}
	if !strings.Contains(out, "ActiveState=active") || !strings.Contains(out, "SubState=running") || strings.Contains(out, "MainPID=0\n") {
		return fmt.Errorf("%s is not running:\n%s", unit, out)
	}
	return nil
}

func (w *World) ollamaListWorks(ctx context.Context) error {
	out, err := w.sh(ctx, w.ollamaEnv()+"ollama list")
	if err != nil {
		return err
	}
	if !strings.HasPrefix(strings.TrimSpace(out), "NAME") {
		return fmt.Errorf("ollama list printed no table:\n%s", out)
	}
	return nil
}

func (w *World) ollamaUsesTheGPU(ctx context.Context) error {
	return w.check(ctx, "Ollama runs on the GPU")
}
