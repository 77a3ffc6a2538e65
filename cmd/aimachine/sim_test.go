package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/aimachine/aimachine/docs/schema"
	"github.com/aimachine/aimachine/fakes/sim"
	"github.com/aimachine/aimachine/provision"
)

// onSimulator starts the in-process simulator (instant time) and points the CLI's environment
// at it as `source pvesim.env` would, with a private known_hosts (it pins the jump host) and
// a catalog carrying the simulator's SSH key. It returns the catalog path and known_hosts.
func onSimulator(t *testing.T) (string, string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	s, err := sim.Start(ctx, sim.Options{TimeScale: 0})
	if err != nil {
		t.Fatalf("start simulator: %v", err)
	}
	t.Cleanup(func() { s.Close() })
	catPath, kh, _ := pointCLIAt(t, s, testCatalog, "catalog.yml")
	return catPath, kh
}

// pointCLIAt points the CLI's environment at s as `source pvesim.env` would, with a private
// known_hosts (a copy of the simulator's: it pins the jump host) and a copy of catalogFile
// carrying the simulator's SSH key as the cloud-init key. It returns the catalog copy, the
// known_hosts path and the environment the CLI reads (a caller may still change it).
func pointCLIAt(t testing.TB, s *sim.Sim, catalogFile, name string) (string, string, map[string]string) {
	t.Helper()
	e := s.Info()
	dir := t.TempDir()
	kh := filepath.Join(dir, "known_hosts")
	data, err := os.ReadFile(e.KnownHostsFile)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(kh, data, 0o600); err != nil {
		t.Fatal(err)
	}
	cat, err := os.ReadFile(catalogFile)
	if err != nil {
		t.Fatal(err)
	}
	text := strings.ReplaceAll(string(cat),
		"ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIEyBEct9p+/3BQlA0E/FkkGXIOT1/sePYm3vsIcQTqBH aimachine-testdata", e.SSHPublicKey)
	catPath := filepath.Join(dir, name)
	if err := os.WriteFile(catPath, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	env := e.Env()
	env[envKnownHosts] = kh
	env[envCatalog] = catPath
	env[envReports] = filepath.Join(dir, "reports")
	old := getenv
	getenv = func(k string) string { return env[k] }
	t.Cleanup(func() { getenv = old })
	return catPath, kh, env
}

// mustMatch validates one JSON document against its documented schema and checks that every
// key is snake_case.
func mustMatch(t *testing.T, schemaName string, data []byte) map[string]any {
	t.Helper()
	if err := schema.Validate(schemaName, data); err != nil {
		t.Fatalf("output does not match docs/schema/%s: %v\n%s", schemaName, err, data)
	}
	var v map[string]any
	if err := json.Unmarshal(data, &v); err != nil {
		t.Fatal(err)
	}
	if bad := schema.NonSnakeKeys(v); len(bad) > 0 {
		t.Fatalf("keys not in snake_case: %q", bad)
	}
	return v
}

// The README's walk on the simulator: plan → deploy → plan → verify → destroy. plan
// --detailed-exitcode says 2 before the deploy and 0 after it (the guest phase examined
// over SSH, every task in place); the --json outputs match their schemas; destroy leaves
// known_hosts as it was before the deploy.
func TestPlanDeployVerifyDestroyOnTheSimulator(t *testing.T) {
	_, kh := onSimulator(t)
	khBefore, _ := os.ReadFile(kh)
	const vm = "vm-llm-aimachine"

	code, out, errOut := runArgs("plan", vm, "--detailed-exitcode")
	if code != 2 || !strings.Contains(out, "+ create") || !strings.Contains(out, "not examined: the VM does not exist yet") {
		t.Fatalf("plan before the deploy: exit %d, want 2\n%s\n%s", code, out, errOut)
	}
	code, out, _ = runArgs("plan", vm, "--json")
	p := mustMatch(t, "plan.schema.json", []byte(out))
	if code != 0 || p["changes"].(map[string]any)["total"].(float64) < 2 || p["guest"].(map[string]any)["unknown"] != true {
		t.Fatalf("plan --json before the deploy: exit %d\n%s", code, out)
	}

	code, out, errOut = runArgs("deploy", vm, "--json")
	if code != 0 {
		t.Fatalf("deploy --json: exit %d\n%s\n%s", code, out, errOut)
	}
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if len(lines) < 10 {
		t.Fatalf("deploy --json printed %d lines:\n%s", len(lines), out)
	}
	tasks := map[string]bool{}
	for _, l := range lines[:len(lines)-1] {
		ev := mustMatch(t, "deploy-event.schema.json", []byte(l))
		if ev["status"] != "" {
			tasks[ev["phase"].(string)+": "+ev["task"].(string)] = true
		}
	}
	for _, want := range []string{"infrastructure: create VM 140", "infrastructure: pin SSH host key", "guest: prove the GPU, CUDA and services"} {
		if !tasks[want] {
			t.Errorf("no finished event for %q", want)
		}
	}
	res := mustMatch(t, "deploy-result.schema.json", []byte(lines[len(lines)-1]))
	if res["ok"] != true || res["created"] != true || res["guest_phase"] != true || res["evidence"] == nil {
		t.Fatalf("deploy result %s", lines[len(lines)-1])
	}
	evidence, err := os.ReadFile(res["evidence"].(string))
	if err != nil {
		t.Fatal(err)
	}
	mustMatch(t, "evidence.schema.json", evidence)
	if strings.Contains(errOut, "✓ create VM") {
		t.Errorf("--json also printed the ✓ lines on stderr:\n%s", errOut)
	}

	code, out, errOut = runArgs("plan", vm, "--detailed-exitcode")
	if code != 0 || !strings.Contains(out, "Guest phase:") || !strings.Contains(out, "= install") || !strings.Contains(out, "0 to change (infrastructure 0, guest 0)") {
		t.Fatalf("plan after the deploy: exit %d, want 0\n%s\n%s", code, out, errOut)
	}
	code, out, _ = runArgs("plan", vm, "--json")
	p = mustMatch(t, "plan.schema.json", []byte(out))
	g := p["guest"].(map[string]any)
	if code != 0 || g["checked"] != true || len(g["tasks"].([]any)) < 5 || p["changes"].(map[string]any)["total"].(float64) != 0 {
		t.Fatalf("plan --json after the deploy: exit %d\n%s", code, out)
	}

	// Drift in the guest: plan names the task deploy would apply, and is read-only — a second
	// plan still sees the drift; deploy repairs it and plan is back to 0.
	guestRun(t, vm, "sudo rm -f /etc/modules-load.d/nvidia-uvm.conf")
	for range 2 {
		code, out, errOut = runArgs("plan", vm, "--detailed-exitcode")
		if code != 2 || !strings.Contains(out, "~ load nvidia_uvm at boot: not in place") || !strings.Contains(out, "1 to change (infrastructure 0, guest 1)") {
			t.Fatalf("plan after guest drift: exit %d, want 2\n%s\n%s", code, out, errOut)
		}
	}
	if code, _, errOut = runArgs("deploy", vm); code != 0 || !strings.Contains(errOut, "✓ load nvidia_uvm at boot [changed]") || !strings.Contains(errOut, "1 changed, ") {
		t.Fatalf("deploy after guest drift: exit %d\n%s", code, errOut)
	}
	if code, out, _ = runArgs("plan", vm, "--detailed-exitcode"); code != 0 {
		t.Fatalf("plan after the repair: exit %d\n%s", code, out)
	}

	code, out, errOut = runArgs("verify", vm, "--json")
	v := mustMatch(t, "verify.schema.json", []byte(out))
	if code != 0 || v["ok"] != true || len(v["checks"].([]any)) < 10 {
		t.Fatalf("verify --json: exit %d\n%s\n%s", code, out, errOut)
	}
	vev, _ := v["evidence"].(string)
	verifyEvidence, err := os.ReadFile(vev)
	if err != nil {
		t.Fatalf("verify's evidence.json (%q): %v", vev, err)
	}
	if e := mustMatch(t, "evidence.schema.json", verifyEvidence); len(e["checks"].([]any)) != len(v["checks"].([]any)) {
		t.Errorf("verify's evidence.json holds %d checks, verify printed %d", len(e["checks"].([]any)), len(v["checks"].([]any)))
	}

	code, out, errOut = runArgs("destroy", vm, "--yes")
	if code != 0 || !strings.Contains(out, "VM 140 deleted") || !strings.Contains(errOut, "removed the pinned host key") {
		t.Fatalf("destroy: exit %d\n%s\n%s", code, out, errOut)
	}
	if khAfter, _ := os.ReadFile(kh); !bytes.Equal(khAfter, khBefore) {
		t.Fatalf("known_hosts after destroy:\n%s\nwant as before the deploy:\n%s", khAfter, khBefore)
	}
	if code, _, _ := runArgs("plan", vm, "--detailed-exitcode"); code != 2 {
		t.Fatalf("plan after destroy: exit %d, want 2", code)
	}
}

// A failed deploy --json still ends with a result line that carries the error.
func TestDeployJSONFailureEndsWithTheError(t *testing.T) {
	onSimulator(t)
	code, out, _ := runArgs("deploy", "no-such-vm", "--json")
	if code != 1 {
		t.Fatalf("exit %d, want 1", code)
	}
	sc := bufio.NewScanner(strings.NewReader(out))
	var last string
	for sc.Scan() {
		last = sc.Text()
	}
	res := mustMatch(t, "deploy-result.schema.json", []byte(last))
	if res["ok"] != false || !strings.Contains(res["error"].(map[string]any)["message"].(string), "no-such-vm") {
		t.Fatalf("result %s", last)
	}
}

// guestRun runs cmd on the catalog VM over SSH, as the CLI reaches it.
func guestRun(t *testing.T, vm, cmd string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	f := infraFlags{catalog: catalogDefault()}
	cat, c, _, err := connect(ctx, &f, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	r, err := c.ConnectGuest(ctx, cat, vm, provision.SSHOptions{KnownHostsFile: getenv(envKnownHosts), KeyFile: getenv(envSSHKey), Jump: getenv(envJumpHost)})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	if _, err := r.Run(ctx, cmd); err != nil {
		t.Fatalf("%s: %v", cmd, err)
	}
}
