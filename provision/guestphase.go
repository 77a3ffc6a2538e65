package provision

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/aimachine/aimachine/catalog"
	"github.com/aimachine/aimachine/provision/guest"
	"github.com/aimachine/aimachine/provision/internal/engine"
	"github.com/aimachine/aimachine/provision/internal/tasks"
)

// GuestOptions tune the guest phase.
type GuestOptions struct {
	Reporter Reporter
	// ReportDir is where a failed run writes its log bundle (ReportDir/<vm>-<run>/);
	// default "reports".
	ReportDir string
	RunID     string
	// Getenv reads the API key variable the catalog names (default os.Getenv).
	Getenv func(string) string
	// User is the SSH login (default the catalog's cloud-init user): commands that need root
	// go through sudo unless it is root.
	User string
	// Waits (zero = defaults: apt lock 10m, service readiness 20m, reboot 10m, first poll 2s).
	AptLockTimeout, ReadyTimeout, RebootTimeout, PollInterval time.Duration
	// Heartbeat is the interval of "still running" events for a long task (0 =
	// DefaultHeartbeat, < 0 = none).
	Heartbeat time.Duration
}

// ErrMissingAPIKey is returned when the catalog names an API key variable that is not set.
var ErrMissingAPIKey = errors.New("API key environment variable not set")

// ErrGuestValue is returned when a catalog value or the API key cannot be written into the
// guest intact (a NUL byte, a control character in the key, …): the run stops before the
// first command, and the error names the field, never the value.
var ErrGuestValue = errors.New("a value cannot be written into the guest")

// ErrMissingHFToken is returned when the catalog names a Hugging Face token variable that is not set.
var ErrMissingHFToken = errors.New("Hugging Face token environment variable not set")

// guestParams turns the catalog VM into task parameters, checked by tasks.Params.Validate.
func guestParams(vm *catalog.VM, o GuestOptions) (tasks.Params, error) {
	getenv := o.Getenv
	if getenv == nil {
		getenv = os.Getenv
	}
	user := o.User
	if user == "" {
		user = vm.CloudInit.User
	}
	if user == "" {
		user = "ubuntu"
	}
	var keyErr error
	p := tasks.Params{
		VMName: vm.Name, User: user, IP: vm.IP(),
		AptLockTimeout: o.AptLockTimeout, ReadyTimeout: o.ReadyTimeout, RebootTimeout: o.RebootTimeout, PollInterval: o.PollInterval,
	}
	if vm.GPUEnabled() {
		e := vm.GPU.Expect
		id := e.PCIID
		if id == "" {
			id = "10de:2d04"
		}
		p.GPU = &tasks.GPUParams{PCIID: strings.ToLower(id), Model: e.Model, MemoryMiB: e.MemoryMiB}
	}
	if vm.VLLMEnabled() {
		v := vm.Services.VLLM
		vp := &tasks.VLLMParams{Version: v.Version, Model: v.Model, Binds: v.Bind, Port: v.Port,
			GPUMemoryUtilization: v.GPUMemoryUtilization, MaxModelLen: v.MaxModelLen,
			ModelsDir: v.ModelsDir, Revision: v.Revision, HFTokenEnv: v.HFTokenEnv}
		if vp.ModelsDir == "" {
			vp.ModelsDir = catalog.DefaultVLLMModelsDir
		}
		if v.HFTokenEnv != "" {
			vp.HFToken = strings.TrimSpace(getenv(v.HFTokenEnv))
			if vp.HFToken == "" && keyErr == nil {
				keyErr = fmt.Errorf("%w: services.vllm.hf_token_env names %s, which is empty (hint: export %s=<a Hugging Face read token> before running aimachine; it is written to the VM's %s, mode 0600, and never printed)", ErrMissingHFToken, v.HFTokenEnv, v.HFTokenEnv, "/opt/vllm/hf/token")
			}
		}
		if vp.Version == "" {
			vp.Version = DefaultVLLMVersion
		}
		if vp.Port == 0 {
			vp.Port = catalog.DefaultVLLMPort
		}
		if vp.GPUMemoryUtilization == 0 {
			vp.GPUMemoryUtilization = catalog.DefaultGPUMemoryUtilization
		}
		if len(vp.Binds) == 0 {
			vp.Binds = []string{vm.IP(), "127.0.0.1"}
		}
		p.VLLM = vp
		if v.APIKeyEnv != "" {
			vp.APIKey = getenv(v.APIKeyEnv)
			if vp.APIKey == "" {
				keyErr = fmt.Errorf("%w: services.vllm.api_key_env names %s, which is empty (hint: export %s=<key> before running aimachine; the key is written to the VM's /etc/vllm/vllm.env, mode 0600, and never printed)", ErrMissingAPIKey, v.APIKeyEnv, v.APIKeyEnv)
			}
		}
	}
	if vm.OllamaEnabled() {
		o := vm.Services.Ollama
		op := &tasks.OllamaParams{Version: o.Version, Binds: o.Bind, Port: o.Port, ModelsDir: o.ModelsDir, Models: o.Models}
		if op.Port == 0 {
			op.Port = catalog.DefaultOllamaPort
		}
		if op.ModelsDir == "" {
			op.ModelsDir = catalog.DefaultOllamaModelsDir
		}
		if len(op.Binds) == 0 && vm.IP() != "" {
			op.Binds = []string{vm.IP()}
		}
		p.Ollama = op
	}
	if err := p.Validate(); err != nil {
		return p, fmt.Errorf("%w: %w", ErrGuestValue, err)
	}
	return p, keyErr
}

// skippedParts names the parts of the guest phase the catalog turns off, with the reason
// (reported as skipped tasks).
func skippedParts(vm *catalog.VM) [][2]string {
	var out [][2]string
	if !vm.GPUEnabled() {
		out = append(out, [2]string{"install the NVIDIA driver and CUDA", "no GPU in the catalog (gpu disabled)"})
	}
	if !vm.VLLMEnabled() {
		out = append(out, [2]string{"install vLLM", "disabled in the catalog (services.vllm)"})
	}
	if !vm.OllamaEnabled() {
		out = append(out, [2]string{"install Ollama", "disabled in the catalog (services.ollama)"})
	}
	return out
}

// DefaultVLLMVersion is installed when the catalog pins none: 0.9.2 ships cu128 wheels
// (sm_120) on PyPI and is the last release reported to run on the RTX 50xx before the
// 0.10.0 regression (guest.md §7.1).
const DefaultVLLMVersion = "0.9.2"

// transcript collects a run's commands for the log bundle.
type transcript struct {
	mu      sync.Mutex
	entries []guest.Entry
}

func (t *transcript) add(e guest.Entry) {
	t.mu.Lock()
	t.entries = append(t.entries, e)
	t.mu.Unlock()
}

func (t *transcript) String() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	var b strings.Builder
	for _, e := range t.entries {
		fmt.Fprintf(&b, "=== %s  exit %d  (%s)\n$ %s\n", e.Time.Format(time.RFC3339), e.ExitCode, e.Duration.Round(time.Millisecond), e.Cmd)
		if e.Stdout != "" {
			fmt.Fprintf(&b, "--- stdout (tail)\n%s\n", e.Stdout)
		}
		if e.Stderr != "" {
			fmt.Fprintf(&b, "--- stderr (tail)\n%s\n", e.Stderr)
		}
		if e.Err != "" {
			fmt.Fprintf(&b, "--- error\n%s\n", e.Err)
		}
	}
	return b.String()
}

// RunGuestPhase turns a reachable Ubuntu 24.04 machine into the catalog VM's LLM server:
// open NVIDIA driver, CUDA, GPU proof, vLLM, Ollama. Idempotent: on a converged machine it
// reports 0 changed after one batched facts command. It stops at the first failed task with
// a *TaskError (the VM is left as it is, reachable) and writes a log bundle.
func RunGuestPhase(ctx context.Context, r guest.Runner, c *catalog.Catalog, vm *catalog.VM, opts GuestOptions) (Summary, error) {
	sum, _, err := runGuestPhase(ctx, r, vm, opts, false)
	return sum, err
}

// runGuestPhase is RunGuestPhase; with prove, the first facts pass also gathers the proof and
// the evidence facts (one session on a converged machine), and the Host is returned for
// proveGuest.
func runGuestPhase(ctx context.Context, r guest.Runner, vm *catalog.VM, opts GuestOptions, prove bool) (Summary, *tasks.Host, error) {
	var sum Summary
	rep := opts.Reporter
	if rep == nil {
		rep = Discard
	}
	rep, stopBeats := withHeartbeat(rep, opts.Heartbeat)
	defer stopBeats()
	p, err := guestParams(vm, opts)
	if err != nil {
		task := "read the vLLM API key"
		switch {
		case errors.Is(err, ErrGuestValue):
			task = "check the values written into the guest"
		case errors.Is(err, ErrMissingHFToken):
			task = "read the Hugging Face token"
		}
		return sum, nil, &TaskError{Phase: PhaseGuest, Task: task, Err: err}
	}
	var tr transcript
	secrets := p.Secrets()
	rr := guest.WithTranscript(r, tr.add, secrets...)
	if b, ok := rep.(*beatReporter); ok {
		p.Waiting = func(task string, limit time.Duration) { b.limit(PhaseGuest, task, limit) }
		rr = &watchedRunner{Runner: rr, note: func(cmd string) {
			if cmd != "" {
				cmd = commandLine(guest.RedactAll(cmd, secrets))
			}
			b.running(PhaseGuest, cmd)
		}}
	}
	p.Progress = func(task, msg string) {
		rep.Report(Event{Phase: PhaseGuest, Task: task, Message: guest.RedactAll(msg, secrets)})
	}
	h := tasks.NewHost(rr, p)
	if prove {
		h.GatherProof()
		h.Extra = map[string]string{evidenceProbe: evidenceScript}
	}
	for _, sk := range skippedParts(vm) {
		ev := Event{Phase: PhaseGuest, Task: sk[0], Status: StatusSkipped, Message: sk[1]}
		sum.Add(ev)
		rep.Report(ev)
	}
	_, err = engine.Run(ctx, h.Tasks(), engine.Options{
		Report: func(e engine.Event) {
			ev := Event{Phase: PhaseGuest, Task: e.Task, Status: Status(e.Status), Message: guest.RedactAll(e.Message, secrets), Elapsed: e.Elapsed}
			if e.Status != "" {
				sum.Add(ev)
			}
			rep.Report(ev)
		},
		Invalidate: h.Invalidate,
		Retryable:  func(err error) bool { return errors.Is(err, guest.ErrConnectionLost) },
		Recover: func(ctx context.Context) error {
			rctx, cancel := context.WithTimeout(ctx, 5*time.Minute)
			defer cancel()
			return rr.Reconnect(rctx)
		},
	})
	if err == nil {
		if opts.ReportDir != "" {
			writeBundle(opts, vm.Name, tr.String(), "")
		}
		return sum, h, nil
	}
	te := &TaskError{Phase: PhaseGuest, Err: err}
	var f *engine.Failure
	if errors.As(err, &f) {
		te.Task, te.Err, te.Hint, te.Log = f.Task, f.Err, f.Hint, guest.RedactAll(f.Log, secrets)
	}
	// A connection that dropped and did not come back is the cause, whatever the task that
	// was running guessed from its half-finished output.
	if te.Hint == "" || errors.Is(err, guest.ErrConnectionLost) {
		if h := guestHint(err, vm); h != "" {
			te.Hint = h
		}
	}
	failure := fmt.Sprintf("task: %s\nerror: %v\nhint: %s\n\n%s\n", te.Task, te.Err, te.Hint, te.Log)
	if dir, werr := writeBundle(opts, vm.Name, tr.String(), guest.RedactAll(failure, secrets)); werr == nil {
		te.Bundle = dir
	}
	return sum, h, te
}

// guestHint names the cause of a guest-phase failure that no task explained.
func guestHint(err error, vm *catalog.VM) string {
	switch {
	case errors.Is(err, guest.ErrHostKey):
		return "" // its message says what to do
	case errors.Is(err, guest.ErrConnectionLost):
		return fmt.Sprintf("the SSH connection to VM %d (%s) dropped during the task and did not come back: the VM may have rebooted, crashed or run out of memory "+
			"(check `qm status %d` and the console on the node, and `journalctl -b -1` in the VM), or the network path or jump host went away; "+
			"the VM is kept: re-run the deploy once it answers again (it converges)", vm.ID, vm.IP(), vm.ID)
	case errors.Is(err, context.DeadlineExceeded):
		return "the guest phase ran out of time; re-run the deploy (it converges) or raise the timeout"
	}
	return ""
}

// writeBundle writes reports/<vm>-<run>/transcript.log (and failure.txt).
func writeBundle(o GuestOptions, vm, transcript, failure string) (string, error) {
	base := o.ReportDir
	if base == "" {
		base = "reports"
	}
	run := o.RunID
	if run == "" {
		run = time.Now().UTC().Format("20060102T150405Z")
	}
	dir := filepath.Join(base, vm+"-"+run)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", err
	}
	if err := os.WriteFile(filepath.Join(dir, "transcript.log"), []byte(transcript), 0o600); err != nil {
		return "", err
	}
	if failure != "" {
		if err := os.WriteFile(filepath.Join(dir, "failure.txt"), []byte(failure), 0o600); err != nil {
			return "", err
		}
	}
	return dir, nil
}

// ProofTask is the last task of a deploy: the read-only VerifyGuest checks, as one task.
const ProofTask = "prove the GPU, CUDA and services"

// proveGuest runs VerifyGuest after the guest phase and reports it as the single task
// ProofTask: ok with "N/N checks passed" (a proof is never a change), or failed naming the
// failed checks. A failed proof is a *TaskError of the guest phase (the VM is kept).
func proveGuest(ctx context.Context, h *tasks.Host, vm *catalog.VM, opts GuestOptions, sum *Summary) (VerifyReport, error) {
	rep := opts.Reporter
	if rep == nil {
		rep = Discard
	}
	done := func(st Status, msg string, start time.Time) {
		ev := Event{Phase: PhaseGuest, Task: ProofTask, Status: st, Message: msg, Elapsed: time.Since(start)}
		sum.Add(ev)
		rep.Report(ev)
	}
	start := time.Now()
	rep.Report(Event{Phase: PhaseGuest, Task: ProofTask})
	p, err := guestParams(vm, opts)
	if err != nil && !errors.Is(err, ErrMissingAPIKey) {
		return VerifyReport{VM: vm.Name}, err
	}
	vr, err := verifyOn(ctx, h, vm, p.Secrets(), opts, nil) // one task, not one event per check
	if err != nil {
		done(StatusFailed, err.Error(), start)
		return vr, &TaskError{Phase: PhaseGuest, Task: ProofTask, Err: err,
			Hint: fmt.Sprintf("the VM is kept; re-run the checks with aimachine verify --vm %s", vm.Name)}
	}
	if len(vr.Checks) == 0 {
		done(StatusSkipped, "nothing to prove: no GPU and no service in the catalog", start)
		return vr, nil
	}
	failed := vr.Failed()
	if len(failed) == 0 {
		done(StatusOK, fmt.Sprintf("%d/%d checks passed", len(vr.Checks), len(vr.Checks)), start)
		return vr, nil
	}
	var names, evidence []string
	for _, c := range failed {
		names = append(names, c.Name)
		evidence = append(evidence, "✗ "+c.Name+"\n"+c.Evidence)
	}
	err = fmt.Errorf("%d of %d checks failed: %s", len(failed), len(vr.Checks), strings.Join(names, "; "))
	done(StatusFailed, err.Error(), start)
	return vr, &TaskError{Phase: PhaseGuest, Task: ProofTask, Err: err, Log: guest.Tail(strings.Join(evidence, "\n"), 40),
		Hint: fmt.Sprintf("the VM is kept for debugging; aimachine verify --vm %s shows each check's evidence", vm.Name)}
}

// VerifyCheck is one named proof with its evidence.
type VerifyCheck struct {
	Name     string `json:"name"`
	Pass     bool   `json:"pass"`
	Evidence string `json:"evidence"`
}

// VerifyReport is the result of VerifyGuest: every check, pass or fail.
type VerifyReport struct {
	VM     string        `json:"vm"`
	Checks []VerifyCheck `json:"checks"`
	// Sessions is how many SSH exec sessions the verification used (0 for a deploy's proof
	// taken from the guest phase's facts pass, when nothing changed after it).
	Sessions int `json:"sessions"`
	// Completions are the chat completions verify asked for (vLLM and each listed Ollama
	// model), with time to first token and tokens/s.
	Completions []Completion `json:"completions,omitempty"`

	// evidence is the evidence script's output when the proof ran it (hasEvidence; BuildEvidence
	// then opens no session).
	evidence    string
	hasEvidence bool
}

// OK reports whether every check passed (and there was at least one).
func (r VerifyReport) OK() bool {
	if len(r.Checks) == 0 {
		return false
	}
	for _, c := range r.Checks {
		if !c.Pass {
			return false
		}
	}
	return true
}

// Failed lists the failed checks.
func (r VerifyReport) Failed() []VerifyCheck {
	var out []VerifyCheck
	for _, c := range r.Checks {
		if !c.Pass {
			out = append(out, c)
		}
	}
	return out
}

// Check returns the check with that name.
func (r VerifyReport) Check(name string) (VerifyCheck, bool) {
	for _, c := range r.Checks {
		if c.Name == name {
			return c, true
		}
	}
	return VerifyCheck{}, false
}

// VerifyGuest proves the GPU stack and the services with read-only commands (zero changes):
// lspci, nvidia-smi model / memory / driver, open module, dmesg, nvcc, a CUDA sample, vLLM
// /health and /v1/models, Ollama --version / list / service / CUDA log line.
func VerifyGuest(ctx context.Context, r guest.Runner, vm *catalog.VM, opts GuestOptions) (VerifyReport, error) {
	rep := VerifyReport{VM: vm.Name}
	p, err := guestParams(vm, opts)
	if err != nil && !errors.Is(err, ErrMissingAPIKey) && !errors.Is(err, ErrMissingHFToken) {
		return rep, err
	}
	secrets := p.Secrets()
	rr := guest.WithTranscript(r, func(guest.Entry) {}, secrets...)
	return verifyOn(ctx, tasks.NewHost(rr, p), vm, secrets, opts, opts.Reporter)
}

// evidenceProbe names the evidence script among a proof's probes.
const evidenceProbe = "evidence"

// verifyOn runs the checks on h (from its gathered proof when it holds a fresh one) and
// reports each check to rep (nil: none).
func verifyOn(ctx context.Context, h *tasks.Host, vm *catalog.VM, secrets []string, opts GuestOptions, rep Reporter) (VerifyReport, error) {
	out := VerifyReport{VM: vm.Name}
	before := h.R.Stats().Sessions
	checks, err := h.Verify(ctx)
	if err != nil {
		return out, err
	}
	for _, c := range checks {
		out.Checks = append(out.Checks, VerifyCheck{Name: c.Name, Pass: c.Pass, Evidence: guest.RedactAll(c.Evidence, secrets)})
	}
	getenv := opts.Getenv
	if getenv == nil {
		getenv = os.Getenv
	}
	n := len(out.Checks)
	verifyCompletions(ctx, h.R, vm, getenv, &out)
	for i := n; i < len(out.Checks); i++ {
		out.Checks[i].Evidence = guest.RedactAll(out.Checks[i].Evidence, secrets)
	}
	for i := range out.Completions {
		out.Completions[i].Text = guest.RedactAll(out.Completions[i].Text, secrets)
		out.Completions[i].Error = guest.RedactAll(out.Completions[i].Error, secrets)
	}
	out.Sessions = h.R.Stats().Sessions - before
	if f, ok := h.VerifyFact(evidenceProbe); ok {
		out.evidence, out.hasEvidence = f.Out, true
	}
	if rep != nil {
		for _, c := range out.Checks {
			st := StatusOK
			if !c.Pass {
				st = StatusFailed
			}
			rep.Report(Event{Phase: "verify", Task: c.Name, Status: st, Message: firstLine(c.Evidence)})
		}
	}
	return out, nil
}

func firstLine(s string) string {
	l, _, _ := strings.Cut(s, "\n")
	return l
}

// watchedRunner tells the heartbeats which command runs now.
type watchedRunner struct {
	guest.Runner
	note func(cmd string)
}

func (w *watchedRunner) Run(ctx context.Context, cmd string) (guest.Result, error) {
	w.note(cmd)
	defer w.note("")
	return w.Runner.Run(ctx, cmd)
}

func (w *watchedRunner) Put(ctx context.Context, path string, mode fs.FileMode, data []byte) error {
	w.note("put " + path)
	defer w.note("")
	return w.Runner.Put(ctx, path, mode, data)
}
