package tasks

import (
	"errors"
	"strings"
	"testing"
	"time"
)

func TestParseModelProbe(t *testing.T) {
	out := "snapshot /opt/models/models--Qwen--Qwen2.5-3B-Instruct/snapshots/abc\n" +
		"file 663 /opt/models/models--Qwen--Qwen2.5-3B-Instruct/snapshots/abc/config.json\n" +
		"file 3090000000 /opt/models/models--Qwen--Qwen2.5-3B-Instruct/snapshots/abc/model-00001-of-00002.safetensors\n" +
		"file 3090000000 /opt/models/models--Qwen--Qwen2.5-3B-Instruct/snapshots/abc/model-00002-of-00002.safetensors\n" +
		"file 7031645 /opt/models/models--Qwen--Qwen2.5-3B-Instruct/snapshots/abc/tokenizer.json\n" +
		"incomplete 0\n"
	s := ParseModelProbe(out)
	if !s.Complete() || s.WeightBytes() != 6180000000 {
		t.Errorf("complete %v, weights %d", s.Complete(), s.WeightBytes())
	}
	if ParseModelProbe(strings.Replace(out, "incomplete 0", "incomplete 1", 1)).Complete() {
		t.Error("a snapshot with an unfinished blob counts as complete")
	}
	if ParseModelProbe("incomplete 0\n").Complete() {
		t.Error("no marker counts as complete")
	}
}

func TestCheckFit(t *testing.T) {
	// RTX 5060 Ti 16311 MiB at 0.60: 9.56 GiB for vLLM.
	if f := CheckFit(6180000000, 16311, 0.6); !f.OK {
		t.Errorf("3B bf16 (5.8 GiB) does not fit: %s", f.Summary())
	}
	f := CheckFit(29400000000, 16311, 0.6)
	if f.OK || !strings.Contains(f.Summary(), "weights 27.4 GiB") || !strings.Contains(f.Summary(), "0.60 × 15.9 GiB = 9.6 GiB") {
		t.Errorf("14B bf16: %v %s", f.OK, f.Summary())
	}
	if o := f.Options(&VLLMParams{}); !strings.Contains(o, "cannot help") {
		t.Errorf("options for a model larger than the card: %s", o)
	}
	f = CheckFit(int64(9*(1<<30)), 16311, 0.6)
	if o := f.Options(&VLLMParams{}); f.OK || !strings.Contains(o, "raise services.vllm.gpu_memory_utilization to at least 0.66") {
		t.Errorf("options for 9 GiB: %v %s", f.OK, o)
	}
}

func TestDownloadErrorNamesTheHubMessage(t *testing.T) {
	err := downloadError("Set HF_DEBUG=1 as environment variable for full traceback.\nError: Access denied. Model 'meta-llama/Llama-3.1-8B-Instruct' requires approval.\n", errors.New("exit 1"))
	if err.Error() != "Access denied. Model 'meta-llama/Llama-3.1-8B-Instruct' requires approval." {
		t.Errorf("%v", err)
	}
	err = downloadError("Traceback (most recent call last):\n  File \"x\"\nOSError: [Errno 28] No space left on device\n", errors.New("exit 1"))
	if err.Error() != "OSError: [Errno 28] No space left on device" {
		t.Errorf("%v", err)
	}
}

func TestHeartbeatReportsUntilStopped(t *testing.T) {
	got := make(chan string, 1000)
	h := &Host{P: Params{Progress: func(task, msg string) { got <- task + ": " + msg }}}
	stop := h.heartbeat("download m", "still downloading m", time.Millisecond)
	select {
	case m := <-got:
		if !strings.HasPrefix(m, "download m: still downloading m (") {
			t.Errorf("report %q", m)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("no heartbeat")
	}
	stop() // waits for the reporter: nothing is sent after it returns
	n := len(got)
	for i := 0; i < 3; i++ {
		time.Sleep(2 * time.Millisecond)
		if len(got) != n {
			t.Fatal("a heartbeat came after stop")
		}
	}
}
