package provision

import (
	"context"
	"encoding/json"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/aimachine/aimachine/catalog"
	"github.com/aimachine/aimachine/docs/schema"
	"github.com/aimachine/aimachine/provision/guest"
)

// factsRunner answers the evidence command with captured-style output.
type factsRunner struct{ out string }

func (f factsRunner) Run(ctx context.Context, cmd string) (guest.Result, error) {
	return guest.Result{Cmd: cmd, Stdout: f.out}, nil
}
func (factsRunner) Put(context.Context, string, fs.FileMode, []byte) error { return nil }
func (factsRunner) Reconnect(context.Context) error                        { return nil }
func (factsRunner) Stats() guest.Stats                                     { return guest.Stats{} }
func (factsRunner) Close() error                                           { return nil }

const evidenceOut = `kernel=6.8.0-88-generic
nvrm=NVRM version: NVIDIA UNIX Open Kernel Module for x86_64  580.95.05  Release Build  (dvs-builder@U16-I3-B13-4-1)  Thu Sep 25 20:58:32 UTC 2025
smi=NVIDIA GeForce RTX 5060 Ti, 16311, 580.95.05, 0x2D0410DE
nvcc=release 12.8
vllm=0.9.2
ollama=0.12.3
`

func TestBuildEvidence(t *testing.T) {
	cat, err := catalog.Load("testdata/catalog.yml")
	if err != nil {
		t.Fatal(err)
	}
	res := &DeployResult{VMID: 140, Node: "pve", Name: "vm-llm-aimachine", RunID: "20261123T120000-abcd",
		Summary: Summary{OK: 3, Changed: 2, Tasks: []Event{{Phase: "guest", Task: "install the NVIDIA open driver", Status: StatusChanged, Elapsed: 90 * time.Second}}}}
	ev, err := (*Client)(nil).BuildEvidence(context.Background(), cat, res, VerifyReport{Checks: []VerifyCheck{{Name: "x", Pass: true}}}, factsRunner{evidenceOut})
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]string{"kernel": "6.8.0-88-generic", "driver": "580.95.05", "flavour": "open", "cuda": "12.8", "vllm": "0.9.2", "ollama": "0.12.3", "model": "NVIDIA GeForce RTX 5060 Ti"}
	got := map[string]string{"kernel": ev.GuestKernel, "driver": ev.Driver, "flavour": ev.DriverFlavour, "cuda": ev.CUDA, "vllm": ev.VLLM, "ollama": ev.Ollama, "model": ev.GPU.Model}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("%s = %q, want %q", k, got[k], v)
		}
	}
	if ev.GPU.MemoryMiB != 16311 || ev.Summary.Changed != 2 || len(ev.Timings) != 1 || ev.Timings[0].Seconds != 90 {
		t.Errorf("evidence %+v", ev)
	}
	p, err := ev.Write(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasSuffix(p, filepath.Join("vm-llm-aimachine-20261123T120000-abcd", "evidence.json")) {
		t.Errorf("written to %s", p)
	}
	data, _ := os.ReadFile(p)
	var back Evidence
	if err := json.Unmarshal(data, &back); err != nil || back.Driver != "580.95.05" {
		t.Fatalf("read back: %v %+v", err, back)
	}
	// evidence.json matches its documented schema (docs/json.md), snake_case keys throughout.
	if err := schema.Validate("evidence.schema.json", data); err != nil {
		t.Errorf("evidence.json does not match docs/schema/evidence.schema.json: %v\n%s", err, data)
	}
	var generic any
	_ = json.Unmarshal(data, &generic)
	if bad := schema.NonSnakeKeys(generic); len(bad) > 0 {
		t.Errorf("keys not in snake_case: %q", bad)
	}
}

func TestEvidenceProprietaryDriver(t *testing.T) {
	var e Evidence
	parseEvidence(&e, "nvrm=NVRM version: NVIDIA UNIX x86_64 Kernel Module  570.172.08  Tue Jul  8 17:45:16 UTC 2025\n")
	if e.DriverFlavour != "proprietary" || e.Driver != "570.172.08" {
		t.Fatalf("%+v", e)
	}
}
