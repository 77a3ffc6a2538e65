package main

import (
	"bytes"
	"context"
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
	if code := runHostDeploy(context.Background(), cat, "vm-llm-aimachine", h, &out, &errb); code != 1 {
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
	code := runHostDeploy(context.Background(), cat, "vm-llm-aimachine", h, &out, &errb)
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
