package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/aimachine/aimachine/provision/guest/guesttest"
)

// deploy --host: an unknown host key is refused unless --accept-new-host-key is given; a
// failed task prints ✗ with the task name and exits 1.
func TestHostDeployHostKeyAndFailure(t *testing.T) {
	dir := t.TempDir()
	signer, keyFile := guesttest.ClientKey(t, dir)
	srv := guesttest.New(t, signer.PublicKey(), guesttest.Shell(t.TempDir()))
	addr := srv.Start("")
	kh := filepath.Join(dir, "known_hosts")
	t.Setenv("VLLM_API_KEY", "sk-host-test-1234")
	t.Setenv("AIMACHINE_VLLM_API_KEY", "sk-host-test-1234")

	cat, _ := filepath.Abs("../../infrastructure-catalog.yml")
	t.Chdir(t.TempDir()) // the log bundle goes to ./reports
	h := hostFlags{host: "root@" + addr, sshKey: keyFile, knownHosts: kh}
	var out, errb bytes.Buffer
	if code := runHostDeploy(context.Background(), cat, "vm-llm-aimachine", h, "reports", &out, &errb); code != 1 {
		t.Fatalf("exit %d", code)
	}
	if !strings.Contains(errb.String(), "host key") || !strings.Contains(errb.String(), "--accept-new-host-key") {
		t.Fatalf("unknown key not refused clearly: %s", errb.String())
	}
	if acc, _ := srv.Stats(); acc != 0 {
		t.Fatal("a session ran on an unverified host")
	}

	h.acceptNew = true
	errb.Reset()
	code := runHostDeploy(context.Background(), cat, "vm-llm-aimachine", h, "reports", &out, &errb)
	pinned, _ := os.ReadFile(kh)
	if !strings.Contains(string(pinned), "ssh-ed25519") {
		t.Fatalf("key not pinned: %q", pinned)
	}
	// This test machine is not a fresh Ubuntu 24.04 GPU guest: the phase stops at a task with ✗.
	if code != 1 || !strings.Contains(errb.String(), "✗ ") {
		t.Fatalf("exit %d, stderr:\n%s", code, errb.String())
	}
	_, execs := srv.Stats()
	for _, c := range execs {
		if strings.Contains(c, "sk-host-test-1234") {
			t.Fatal("API key on a command line")
		}
	}
}

// deploy --host runs only the guest phase: no Proxmox environment is read, --ssh-key,
// --known-hosts, --jump and --accept-new-host-key reach the SSH client, and a failed task
// prints its log bundle.
func TestDeployHostFlagRunsOnlyTheGuestPhase(t *testing.T) {
	dir := t.TempDir()
	signer, keyFile := guesttest.ClientKey(t, dir)
	target := guesttest.New(t, signer.PublicKey(), func(_ context.Context, cmd string, _ io.Reader, _, stderr io.Writer) int {
		fmt.Fprintln(stderr, "bash: not an Ubuntu guest")
		return 127
	})
	jump := guesttest.New(t, signer.PublicKey(), nil)
	jump.Routes = map[string]*guesttest.Server{"192.168.0.140:22": target}
	jumpAddr := jump.Start("")
	kh := filepath.Join(dir, "known_hosts")
	jump.PinIn(t, kh, jumpAddr)
	old := getenv
	getenv = func(string) string { return "" } // no PROXMOX_VE_*: a Proxmox connection would fail
	t.Cleanup(func() { getenv = old })
	t.Setenv("AIMACHINE_SIMULATOR", "1") // a direct dial to 192.168.0.140 would be refused
	t.Setenv("VLLM_API_KEY", "sk-host-test-1234")
	t.Setenv("AIMACHINE_VLLM_API_KEY", "sk-host-test-1234")
	cat, _ := filepath.Abs("../../infrastructure-catalog.yml")
	t.Chdir(t.TempDir())

	// --json first: events, then a failed result carrying the task's error, against the schemas.
	var jout, jerr bytes.Buffer
	if code := run(context.Background(), []string{"deploy", "vm-llm-aimachine", "--catalog", cat, "--json",
		"--host", "ubuntu@192.168.0.140", "--accept-new-host-key", "--ssh-key", keyFile, "--known-hosts", kh,
		"--jump", "root@" + jumpAddr}, &jout, &jerr); code != 1 {
		t.Fatalf("deploy --host --json: exit %d\n%s", code, jerr.String())
	}
	lines := strings.Split(strings.TrimSpace(jout.String()), "\n")
	for _, l := range lines[:len(lines)-1] {
		mustMatch(t, "deploy-event.schema.json", []byte(l))
	}
	if res := mustMatch(t, "deploy-result.schema.json", []byte(lines[len(lines)-1])); res["ok"] != false || res["guest_phase"] != true {
		t.Fatalf("result %s", lines[len(lines)-1])
	}

	var out, errb bytes.Buffer
	code := run(context.Background(), []string{"deploy", "--vm", "vm-llm-aimachine", "--catalog", cat,
		"--host", "ubuntu@192.168.0.140", "--accept-new-host-key", "--ssh-key", keyFile, "--known-hosts", kh,
		"--jump", "root@" + jumpAddr}, &out, &errb)
	stderr := errb.String()
	t.Logf("stderr:\n%s", stderr)
	if code != 1 || !strings.Contains(stderr, "✗ ") {
		t.Fatalf("exit %d, stderr:\n%s", code, stderr)
	}
	if strings.Contains(stderr, "PROXMOX_VE") {
		t.Fatalf("deploy --host read the Proxmox environment:\n%s", stderr)
	}
	if _, execs := target.Stats(); len(execs) == 0 {
		t.Fatal("no command ran on the host")
	}
	if acc, _ := jump.Stats(); acc == 0 {
		t.Fatal("the host was not reached through --jump")
	}
	pinned, _ := os.ReadFile(kh)
	if !strings.Contains(string(pinned), "192.168.0.140") {
		t.Fatalf("--accept-new-host-key did not pin the host key:\n%s", pinned)
	}
	i := strings.Index(stderr, "  logs: reports/vm-llm-aimachine-")
	if i < 0 {
		t.Fatalf("no log bundle line:\n%s", stderr)
	}
	bundle := strings.TrimSpace(strings.SplitN(stderr[i:], "\n", 2)[0][len("  logs: "):])
	if _, err := os.Stat(filepath.Join(bundle, "failure.txt")); err != nil {
		t.Fatalf("log bundle: %v", err)
	}
}

func TestDeployHostFlagConflicts(t *testing.T) {
	for _, args := range [][]string{
		{"--host", "ubuntu@127.0.0.1", "--infra-only"},
		{"--host", "ubuntu@127.0.0.1", "--keep-on-failure"},
		{"--accept-new-host-key"},
	} {
		var out, errb bytes.Buffer
		code := run(context.Background(), append([]string{"deploy", "--vm", "vm-llm-aimachine"}, args...), &out, &errb)
		if code != 2 || !strings.Contains(errb.String(), "--host") {
			t.Errorf("%v: exit %d, stderr %q; want 2 naming --host", args, code, errb.String())
		}
	}
}
