package tasks

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"net/url"
	"path"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/aimachine/aimachine/provision/guest"
	"github.com/aimachine/aimachine/provision/internal/engine"
)

// Models on disk before the services start: the vLLM model downloaded with the Hugging Face
// CLI (`hf download`, huggingface_hub in the vLLM venv) into ModelsDir in the Hub's cache
// layout, checked against vLLM's share of the GPU memory, and the Ollama models pulled.

const (
	// hfHome is the vLLM unit's HF_HOME; huggingface_hub reads the token from $HF_HOME/token.
	hfHome      = vllmRoot + "/hf"
	hfTokenPath = hfHome + "/token"
	hfCLI       = vllmVenv + "/bin/hf"
)

// DefaultModelsDir is where the vLLM model goes when the catalog names no models_dir.
const DefaultModelsDir = "/opt/models"

func (v *VLLMParams) modelsDir() string {
	if v.ModelsDir == "" {
		return DefaultModelsDir
	}
	return v.ModelsDir
}

// repoDir is the model's directory in the Hub cache layout (models--ORG--NAME).
func (v *VLLMParams) repoDir() string {
	return path.Join(v.modelsDir(), "models--"+strings.ReplaceAll(v.Model, "/", "--"))
}

func (v *VLLMParams) revision() string {
	if v.Revision == "" {
		return "main"
	}
	return v.Revision
}

// markerPath records a finished `hf download` (it exits 0 only with every file in place).
func (v *VLLMParams) markerPath() string {
	return path.Join(v.modelsDir(), ".aimachine", strings.ReplaceAll(v.Model, "/", "--")+"@"+strings.ReplaceAll(v.revision(), "/", "--"))
}

// modelProbe prints the finished snapshot (from the marker), its files with sizes and the
// number of unfinished blobs.
func (v *VLLMParams) modelProbe() string {
	return `m=` + guest.Quote(v.markerPath()) + `; if [ -r "$m" ]; then s=$(cat "$m"); echo "snapshot $s"; stat -L -c 'file %s %n' "$s"/* 2>/dev/null; fi; ` +
		`echo "incomplete $(ls -1 ` + guest.Quote(v.repoDir()+"/blobs") + ` 2>/dev/null | grep -c '\.incomplete$')"`
}

// ModelSnapshot is what modelProbe found.
type ModelSnapshot struct {
	Path       string
	Files      map[string]int64 // base name -> bytes
	Incomplete int
}

// WeightBytes sums the weight files (safetensors, bin, pt, gguf).
func (s ModelSnapshot) WeightBytes() int64 {
	var n int64
	for f, sz := range s.Files {
		if strings.HasSuffix(f, ".safetensors") || strings.HasSuffix(f, ".bin") || strings.HasSuffix(f, ".pt") || strings.HasSuffix(f, ".gguf") {
			n += sz
		}
	}
	return n
}

// Complete: a finished download with a config and weights, and nothing half-written.
func (s ModelSnapshot) Complete() bool {
	_, cfg := s.Files["config.json"]
	return s.Path != "" && cfg && s.WeightBytes() > 0 && s.Incomplete == 0
}

// ParseModelProbe reads modelProbe's output.
func ParseModelProbe(out string) ModelSnapshot {
	s := ModelSnapshot{Files: map[string]int64{}}
	for _, line := range strings.Split(out, "\n") {
		f := strings.Fields(line)
		switch {
		case len(f) == 2 && f[0] == "snapshot":
			s.Path = f[1]
		case len(f) == 3 && f[0] == "file":
			n, err := strconv.ParseInt(f[1], 10, 64)
			if err == nil {
				s.Files[path.Base(f[2])] = n
			}
		case len(f) == 2 && f[0] == "incomplete":
			s.Incomplete, _ = strconv.Atoi(f[1])
		}
	}
	return s
}

func (h *Host) modelProbes(p map[string]string) {
	if v := h.P.VLLM; v != nil {
		p["vllm_model"] = v.modelProbe()
		if v.HFToken != "" {
			p["hf_token"] = `stat -c '%a %U' ` + guest.Quote(hfTokenPath) + ` && sha256sum < ` + guest.Quote(hfTokenPath)
		}
	}
	if o := h.P.Ollama; o != nil && len(o.Models) > 0 {
		p["ollama_models"] = `OLLAMA_HOST=` + guest.Quote(ollamaHost(o)) + ` ollama list`
	}
}

// vllmModelTasks run before vLLM's unit is written and (re)started: a model that is missing
// or cannot fit stops the run while the running service (if any) is left as it is.
func (h *Host) vllmModelTasks() []engine.Task {
	var ts []engine.Task
	if h.P.VLLM.HFToken != "" {
		ts = append(ts, h.hfTokenTask())
	}
	// The fit check comes first: a model that cannot fit is refused before gigabytes of
	// weights are downloaded (the Hub gives the sizes when the model is not on disk yet).
	return append(ts, h.vllmFitTask(), h.modelDownloadTask())
}

// tokenDigest is what the guest's token file must hash to (the digest, never the token, is
// compared and logged).
func tokenDigest(tok string) string {
	sum := sha256.Sum256([]byte(tok))
	return hex.EncodeToString(sum[:])
}

func (h *Host) hfTokenTask() engine.Task {
	v := h.P.VLLM
	return &task{
		name: "write the Hugging Face token to " + hfTokenPath + " (mode 0600)",
		check: func(ctx context.Context) (bool, error) {
			f, err := h.Fact(ctx, "hf_token")
			if err != nil {
				return false, err
			}
			return f.RC == 0 && strings.HasPrefix(f.Out, "600 vllm\n") && strings.Contains(f.Out, tokenDigest(v.HFToken)), nil
		},
		apply: func(ctx context.Context) error {
			if err := h.R.Put(ctx, hfTokenPath, 0o600, []byte(v.HFToken)); err != nil {
				return err
			}
			if res, err := h.Root(ctx, "chown vllm:vllm "+guest.Quote(hfTokenPath)); err != nil {
				return engine.Fail(fmt.Errorf("chown %s: %w", hfTokenPath, err), "", guest.Tail(res.Stdout+res.Stderr, 5))
			}
			h.restart["vllm"] = true
			return nil
		},
	}
}

func (h *Host) modelDownloadTask() engine.Task {
	v := h.P.VLLM
	rev := ""
	if v.Revision != "" {
		rev = " at " + v.Revision
	}
	name := "download " + v.Model + rev + " into " + v.modelsDir()
	var got ModelSnapshot
	return &task{
		name: name,
		check: func(ctx context.Context) (bool, error) {
			f, err := h.Fact(ctx, "vllm_model")
			if err != nil {
				return false, err
			}
			got = ParseModelProbe(f.Out)
			return got.Complete(), nil
		},
		apply: func(ctx context.Context) error {
			args := []string{guest.Quote(hfCLI), "download", guest.Quote(v.Model), "--cache-dir", guest.Quote(v.modelsDir())}
			if v.Revision != "" {
				args = append(args, "--revision", guest.Quote(v.Revision))
			}
			h.progress(name, "downloading with hf download (huggingface_hub); a large model takes minutes")
			script := "set -e; install -d -o vllm -g vllm -m 0755 " + guest.Quote(v.modelsDir()) + "; " +
				"cd " + guest.Quote(vllmRoot) + "; sudo -u vllm -H env " + guest.Quote("HF_HOME="+hfHome) + " HF_HUB_DISABLE_PROGRESS_BARS=1 " + strings.Join(args, " ")
			stop := h.heartbeat(name, "still downloading "+v.Model, downloadHeartbeat)
			res, err := h.Root(ctx, script)
			stop()
			if err != nil {
				if ctx.Err() != nil {
					return err
				}
				out := res.Stdout + res.Stderr
				return engine.Fail(fmt.Errorf("hf download %s: %w", v.Model, downloadError(out, err)), h.downloadHint(out), guest.Tail(out, 20))
			}
			snap := strings.TrimSpace(lastLine(res.Stdout))
			if !strings.HasPrefix(snap, "/") {
				return engine.Fail(fmt.Errorf("hf download %s printed no snapshot path", v.Model), "run the command by hand on the VM to see why", guest.Tail(res.Stdout+res.Stderr, 20))
			}
			mark := v.markerPath()
			if err := h.R.Put(ctx, mark, 0o644, []byte(snap+"\n")); err != nil {
				return err
			}
			h.restart["vllm"] = true
			return nil
		},
		message: func() string {
			if got.Path == "" {
				return ""
			}
			return fmt.Sprintf("%.1f GiB of weights in %s", float64(got.WeightBytes())/(1<<30), got.Path)
		},
	}
}

// downloadHeartbeat is how often a running download says it is still running.
const downloadHeartbeat = 30 * time.Second

// heartbeat reports msg with the elapsed time every interval until the returned stop is
// called (stop waits for the reporter goroutine, so no report follows it).
func (h *Host) heartbeat(task, msg string, every time.Duration) (stop func()) {
	done := make(chan struct{})
	finished := make(chan struct{})
	start := time.Now()
	go func() {
		defer close(finished)
		t := time.NewTicker(every)
		defer t.Stop()
		for {
			select {
			case <-done:
				return
			case <-t.C:
				h.progress(task, fmt.Sprintf("%s (%s so far)", msg, time.Since(start).Round(time.Second)))
			}
		}
	}()
	return func() {
		close(done)
		<-finished
	}
}

// downloadError names what the Hub said (the CLI's "Error: …" line or the last traceback line).
func downloadError(out string, err error) error {
	for _, line := range strings.Split(out, "\n") {
		if strings.HasPrefix(line, "Error: ") {
			return errors.New(strings.TrimPrefix(line, "Error: "))
		}
	}
	lines := strings.Split(strings.TrimSpace(out), "\n")
	for i := len(lines) - 1; i >= 0; i-- {
		if l := strings.TrimSpace(lines[i]); regexp.MustCompile(`^[A-Za-z_.]+(Error|Exception)\b`).MatchString(l) {
			return errors.New(l)
		}
	}
	return err
}

// downloadHint turns the hf CLI's failures (huggingface_hub cli/_errors.py wording) into the fix.
func (h *Host) downloadHint(out string) string {
	v := h.P.VLLM
	switch {
	case strings.Contains(out, "requires approval") || strings.Contains(out, "GatedRepoError"):
		if v.HFToken == "" {
			return fmt.Sprintf("%s is a gated model: request access on https://huggingface.co/%s, create a read token, set services.vllm.hf_token_env to the name of an environment variable and export the token in it before re-running (it is written to the VM with mode 0600, never printed)", v.Model, v.Model)
		}
		return fmt.Sprintf("the token in %s has no access to %s yet: accept the model's licence on https://huggingface.co/%s with the account the token belongs to, then re-run", v.HFTokenEnv, v.Model, v.Model)
	case strings.Contains(out, "not found"):
		return fmt.Sprintf("check services.vllm.model: %q is not a model on the Hugging Face Hub (ids are ORG/NAME, case matters), or it is private and needs services.vllm.hf_token_env", v.Model)
	case strings.Contains(out, "Revision not found"):
		return fmt.Sprintf("services.vllm.revision %q does not exist in %s: use a commit hash, branch or tag of the repo", v.Revision, v.Model)
	case strings.Contains(out, "No space left on device") || strings.Contains(out, "Not enough free disk space"):
		return fmt.Sprintf("the disk holding %s is full: free space or grow the VM's disk (disk.size_gb), or point services.vllm.models_dir at a larger volume; a partial download resumes on the next run", v.modelsDir())
	case strings.Contains(out, "Invalid credentials"):
		return fmt.Sprintf("the Hub refused the token in %s: create a new read token on https://huggingface.co/settings/tokens", v.HFTokenEnv)
	case strings.Contains(out, "RemoteProtocolError") || strings.Contains(out, "ConnectError") || strings.Contains(out, "ReadTimeout") || strings.Contains(out, "Temporary failure in name resolution"):
		return "the download from huggingface.co broke off: re-run (hf resumes the unfinished files); the VM must reach huggingface.co and its CDN"
	}
	return "read the hf output above; the VM must reach huggingface.co"
}

// vllmFitTask stops before vLLM starts — and before the download — when the weights cannot fit
// its share of the GPU memory (instead of letting systemd restart a CUDA out-of-memory crash
// forever). The sizes come from the downloaded snapshot, or, when the model is not on disk
// yet, from the Hub (hubWeightBytes).
func (h *Host) vllmFitTask() engine.Task {
	v := h.P.VLLM
	name := "check " + v.Model + " fits vLLM's share of the GPU memory"
	var msg string
	return &task{
		name: name,
		check: func(ctx context.Context) (bool, error) {
			f, err := h.Facts(ctx)
			if err != nil {
				return false, err
			}
			memMiB := 0
			if gs, err := ParseSMICSV(f["smi"].Out); err == nil && len(gs) > 0 {
				memMiB = gs[0].MemoryMiB
			}
			if memMiB == 0 && h.P.GPU != nil {
				memMiB = h.P.GPU.MemoryMiB
			}
			weights, from := int64(0), ""
			if snap := ParseModelProbe(f["vllm_model"].Out); snap.Complete() {
				weights = snap.WeightBytes()
			} else if weights = h.hubWeightBytes(ctx); weights > 0 {
				from = " (sizes from the Hub, before the download)"
			}
			if memMiB == 0 || weights == 0 {
				msg = "not checked: GPU memory or the model's size unknown"
				return true, nil
			}
			fit := CheckFit(weights, memMiB, v.GPUMemoryUtilization)
			msg = fit.Summary() + from
			if !fit.OK {
				return false, engine.Fail(fmt.Errorf("%s does not fit: %s%s", v.Model, fit.Summary(), from), fit.Options(v), "")
			}
			return true, nil
		},
		message: func() string { return msg },
	}
}

// hubWeightBytes asks the Hugging Face Hub for the sizes of the model's files — GET
// /api/models/{id}/revision/{rev}?blobs=true, what huggingface_hub's model_info(...,
// files_metadata=True) sends (hf_api.py: params["blobs"] = True; without it the siblings carry
// names only) — and sums the weight files as WeightBytes does. The token, when there is one,
// reaches curl on stdin as a header (curl -H @-), never on a command line. 0 when the Hub gives
// no sizes (no network, a gated repo without access): the download then says what is wrong.
func (h *Host) hubWeightBytes(ctx context.Context) int64 {
	v := h.P.VLLM
	rev := v.Revision
	if rev == "" {
		rev = "main"
	}
	u := "https://huggingface.co/api/models/" + v.Model + "/revision/" + url.PathEscape(rev) + "?blobs=true"
	cmd := "curl -sf --max-time 30 " + guest.Quote(u)
	if v.HFToken != "" {
		cmd = "{ printf 'Authorization: Bearer '; cat " + guest.Quote(hfTokenPath) + "; echo; } | curl -sf --max-time 30 -H @- " + guest.Quote(u)
	}
	res, err := h.Root(ctx, cmd)
	if err != nil {
		return 0
	}
	var info struct {
		Siblings []struct {
			Name string `json:"rfilename"`
			Size int64  `json:"size"`
		} `json:"siblings"`
	}
	if json.Unmarshal([]byte(res.Stdout), &info) != nil {
		return 0
	}
	snap := ModelSnapshot{Files: map[string]int64{}}
	for _, f := range info.Siblings {
		snap.Files[f.Name] += f.Size
	}
	return snap.WeightBytes()
}

// vllmOverheadGiB is what vLLM needs beside the weights before any KV cache: activations of
// the profiling run, CUDA graphs and the CUDA context (about 1 GiB on a 16 GB card).
const vllmOverheadGiB = 1.0

// Fit compares a model's weights with vLLM's share of the GPU memory.
type Fit struct {
	WeightsGiB, TotalGiB, BudgetGiB, Utilization float64
	OK                                           bool
}

// CheckFit: the weights plus vllmOverheadGiB must fit gpu_memory_utilization × the memory.
func CheckFit(weightBytes int64, memMiB int, util float64) Fit {
	f := Fit{WeightsGiB: float64(weightBytes) / (1 << 30), TotalGiB: float64(memMiB) / 1024, Utilization: util}
	f.BudgetGiB = util * f.TotalGiB
	f.OK = f.WeightsGiB+vllmOverheadGiB <= f.BudgetGiB
	return f
}

// Summary gives the numbers.
func (f Fit) Summary() string {
	return fmt.Sprintf("weights %.1f GiB + ~%.0f GiB overhead against %.2f × %.1f GiB = %.1f GiB (gpu_memory_utilization × GPU memory)",
		f.WeightsGiB, vllmOverheadGiB, f.Utilization, f.TotalGiB, f.BudgetGiB)
}

// Options lists what the operator can change.
func (f Fit) Options(v *VLLMParams) string {
	need := (f.WeightsGiB + vllmOverheadGiB + 0.5) / f.TotalGiB
	opts := []string{"choose a smaller or quantised model (AWQ/GPTQ 4-bit builds take about a quarter of the bf16 size, FP8 half)"}
	if need <= 0.95 {
		opts = append(opts, fmt.Sprintf("raise services.vllm.gpu_memory_utilization to at least %.2f (less VRAM is then left for Ollama)", math.Ceil(need*100)/100))
	} else {
		opts = append(opts, fmt.Sprintf("a higher gpu_memory_utilization cannot help: the weights need %.0f%% of the card", need*100))
	}
	opts = append(opts, "lower services.vllm.max_model_len only once the weights fit (it shrinks the KV cache, not the weights)", "use a GPU with more memory")
	return "options: " + strings.Join(opts, "; ")
}

// --- Ollama models ---

func ollamaTag(m string) string {
	if strings.Contains(m, ":") {
		return m
	}
	return m + ":latest"
}

// ParseOllamaList returns the model names of `ollama list`.
func ParseOllamaList(out string) map[string]bool {
	m := map[string]bool{}
	for _, line := range strings.Split(out, "\n") {
		f := strings.Fields(line)
		if len(f) == 0 || f[0] == "NAME" {
			continue
		}
		m[f[0]] = true
	}
	return m
}

func (h *Host) ollamaModelsTask() engine.Task {
	o := h.P.Ollama
	var missing []string
	return &task{
		name: "pull the Ollama models " + strings.Join(o.Models, ", "),
		check: func(ctx context.Context) (bool, error) {
			f, err := h.Fact(ctx, "ollama_models")
			if err != nil {
				return false, err
			}
			have := ParseOllamaList(f.Out)
			missing = nil
			for _, m := range o.Models {
				if !have[ollamaTag(m)] {
					missing = append(missing, m)
				}
			}
			return f.RC == 0 && len(missing) == 0, nil
		},
		apply: func(ctx context.Context) error {
			for _, m := range missing {
				h.progress("pull the Ollama models", "ollama pull "+m)
				res, err := h.Root(ctx, "OLLAMA_HOST="+guest.Quote(ollamaHost(o))+" ollama pull "+guest.Quote(m))
				if err != nil {
					if ctx.Err() != nil {
						return err
					}
					out := res.Stdout + res.Stderr
					hint := "the VM must reach registry.ollama.ai; read the output above"
					switch {
					case strings.Contains(out, "file does not exist"):
						hint = fmt.Sprintf("%q is not in the Ollama library: check services.ollama.models (names as on ollama.com/library, e.g. qwen2.5:0.5b)", m)
					case strings.Contains(out, "no space left on device"):
						hint = "the disk holding " + o.ModelsDir + " is full: free space or grow the VM's disk"
					case strings.Contains(out, "could not connect"):
						hint = "the ollama service is not answering: systemctl status ollama on the VM"
					}
					return engine.Fail(fmt.Errorf("ollama pull %s: %w", m, err), hint, guest.Tail(out, 10))
				}
			}
			return nil
		},
	}
}
