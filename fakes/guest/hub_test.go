package guest

import (
	"encoding/json"
	"strings"
	"testing"
	"time"
)

// TestHFDownload pins the simulated Hub and `hf download` against huggingface_hub v1.7.0
// (cli/_errors.py, cli/hf.py, utils/_http.py; see hub.go): the cache layout, a gated repo
// without and with a token, an unknown repo, a broken download and a full disk.
func TestHFDownload(t *testing.T) {
	vm := newVM(t, 0, nil).ready()
	c := vm.client()
	vm.must(c, "sudo apt-get update && sudo apt-get install -y python3.12-venv python3.12-dev build-essential && python3 -m venv ~/venv && ~/venv/bin/pip install vllm")
	hf := "~/venv/bin/hf download "

	out := vm.must(c, hf+"Qwen/Qwen2.5-0.5B-Instruct --cache-dir /tmp/models")
	repo := hubRepos["Qwen/Qwen2.5-0.5B-Instruct"]
	if want := "/tmp/models/models--Qwen--Qwen2.5-0.5B-Instruct/snapshots/" + repo.sha + "\n"; out != want {
		t.Errorf("stdout %q, want the snapshot path %q", out, want)
	}
	if got := vm.must(c, "cat /tmp/models/models--Qwen--Qwen2.5-0.5B-Instruct/refs/main"); got != repo.sha {
		t.Errorf("refs/main %q", got)
	}
	if got := vm.must(c, "stat -L -c '%s' /tmp/models/models--Qwen--Qwen2.5-0.5B-Instruct/snapshots/"+repo.sha+"/model.safetensors"); got != "988000000\n" {
		t.Errorf("model.safetensors size %q (0.494e9 params × 2 bytes)", got)
	}

	r := vm.sh(c, hf+"meta-llama/Llama-3.2-1B-Instruct --cache-dir /tmp/models")
	if r.code != 1 || r.stderr != "Error: Access denied. Model 'meta-llama/Llama-3.2-1B-Instruct' requires approval.\n" ||
		r.stdout != "Set HF_DEBUG=1 as environment variable for full traceback.\n" {
		t.Errorf("gated without a token: %+v", r)
	}
	vm.must(c, "mkdir -p ~/.cache/huggingface && printf 'hf_simulatedtoken123\\n' > ~/.cache/huggingface/token")
	if out := vm.must(c, hf+"meta-llama/Llama-3.2-1B-Instruct --cache-dir /tmp/models --quiet"); !strings.Contains(out, "/snapshots/") {
		t.Errorf("gated with a token file: %q", out)
	}
	r = vm.sh(c, hf+"Qwen/No-Such-Model --cache-dir /tmp/models")
	if r.code != 1 || r.stderr != "Error: Model 'Qwen/No-Such-Model' not found. If the repo is private, make sure you are authenticated.\n" {
		t.Errorf("unknown repo: %+v", r)
	}

	vm.f.InjectFault(Fault{Kind: FaultHubDrop, Count: 1})
	r = vm.sh(c, hf+"Qwen/Qwen2.5-1.5B-Instruct --cache-dir /tmp/models")
	if r.code != 1 || !strings.Contains(r.stderr, "httpx.RemoteProtocolError: peer closed connection without sending complete message body") {
		t.Errorf("broken download: %+v", r)
	}
	if got := vm.must(c, "ls /tmp/models/models--Qwen--Qwen2.5-1.5B-Instruct/blobs"); !strings.Contains(got, ".incomplete") {
		t.Errorf("no .incomplete blob after a broken download: %q", got)
	}
	vm.must(c, hf+"Qwen/Qwen2.5-1.5B-Instruct --cache-dir /tmp/models") // resumes

	vm.f.InjectFault(Fault{Kind: FaultDiskFull, Count: 1})
	r = vm.sh(c, hf+"Qwen/Qwen2.5-3B-Instruct --cache-dir /tmp/models")
	if r.code != 1 || !strings.Contains(r.stderr, "OSError: [Errno 28] No space left on device") || !strings.Contains(r.stderr, "Not enough free disk space to download the file.") {
		t.Errorf("disk full: %+v", r)
	}
}

// TestInferenceTiming: decode time per token follows weights / (bandwidth × 0.7), and the KV
// budget limits how many sequences run at once.
func TestInferenceTiming(t *testing.T) {
	spec := gpuMemoryBandwidth(&gpuDev{device: "2d04"})
	if spec.BandwidthGBs != 448 {
		t.Fatalf("RTX 5060 Ti bandwidth %v GB/s, want 448", spec.BandwidthGBs)
	}
	e := newEngine(6.18e9, 3.09e9, 36864, spec, 1000, 256)
	w, bw := 6.18e9, 448e9*0.7
	want := time.Duration(w / bw * float64(time.Second))
	if got := e.step(); got != want {
		t.Errorf("decode step %v, want %v (weights / (bandwidth × 0.7))", got, want)
	}
	if p1, p2 := e.prefill(100), e.prefill(200); p2 != 2*p1 || p1 <= 0 {
		t.Errorf("prefill not proportional to the prompt: %v %v", p1, p2)
	}
	// 1000 KV tokens: two sequences of 400 run, a third waits until one ends.
	ctx := t.Context()
	if !e.admit(ctx, 400) || !e.admit(ctx, 400) {
		t.Fatal("two sequences do not fit 1000 tokens")
	}
	admitted := make(chan bool)
	go func() { admitted <- e.admit(ctx, 400) }()
	select {
	case <-admitted:
		t.Fatal("a third sequence ran beyond the KV budget")
	case <-time.After(20 * time.Millisecond):
	}
	e.release(400, 0)
	if !<-admitted {
		t.Fatal("the waiting sequence never ran")
	}
	toks, stop := reply("hi", 5, false)
	again, _ := reply("hi", 5, false)
	if len(toks) != 5 || stop || strings.Join(toks, "") != strings.Join(again, "") {
		t.Errorf("reply not deterministic or not max_tokens long: %q %q", toks, again)
	}
}

// TestHubModelInfoSizesOnlyWithBlobs: the Hub's model info lists siblings by name; their sizes
// come only with ?blobs=true (huggingface_hub hf_api.py model_info: files_metadata=True sends
// params["blobs"] = True, which requests encodes as "True").
func TestHubModelInfoSizesOnlyWithBlobs(t *testing.T) {
	for _, tc := range []struct {
		query     string
		wantSizes bool
	}{{"", false}, {"?blobs=True", true}, {"?blobs=true", true}} {
		resp := hubCall("GET", "api/models/Qwen/Qwen2.5-3B-Instruct/revision/main"+tc.query, "")
		var info struct {
			Siblings []map[string]any `json:"siblings"`
		}
		if err := json.NewDecoder(resp.Body).Decode(&info); err != nil || len(info.Siblings) == 0 {
			t.Fatalf("%q: %v %+v", tc.query, err, info)
		}
		for _, s := range info.Siblings {
			_, has := s["size"]
			if has != tc.wantSizes || s["rfilename"] == nil {
				t.Fatalf("%q: sibling %v (sizes wanted: %v)", tc.query, s, tc.wantSizes)
			}
		}
	}
}
