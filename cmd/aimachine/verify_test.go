package main

import (
	"bytes"
	"context"
	"encoding/json"
	"path/filepath"
	"strings"
	"testing"

	"github.com/aimachine/aimachine/provision/guest/guesttest"
)

func TestVerifyNeedsVM(t *testing.T) {
	var out, errb bytes.Buffer
	if code := run(context.Background(), []string{"verify"}, &out, &errb); code != 2 || !strings.Contains(errb.String(), "--vm NAME is required") {
		t.Fatalf("exit %d, stderr %q", code, errb.String())
	}
}

// A machine without the GPU stack: verify reports every failed proof, exits 1 and changes nothing.
func TestVerifyFailsReadOnlyOnABareMachine(t *testing.T) {
	dir := t.TempDir()
	signer, keyFile := guesttest.ClientKey(t, dir)
	srv := guesttest.New(t, signer.PublicKey(), guesttest.Shell(t.TempDir()))
	addr := srv.Start("")
	kh := filepath.Join(dir, "known_hosts")
	srv.PinIn(t, kh, addr)
	t.Setenv("AIMACHINE_TEST_KEY_UNUSED", "")

	reports := t.TempDir()
	var out, errb bytes.Buffer
	code := run(context.Background(), []string{"verify", "--vm", "vm-llm-aimachine", "--catalog", "../../infrastructure-catalog.yml",
		"--host", "root@" + addr, "--ssh-key", keyFile, "--known-hosts", kh, "--jump", "", "--reports", reports, "--json"}, &out, &errb)
	if code != 1 {
		t.Fatalf("exit %d, want 1; stderr %s", code, errb.String())
	}
	var rep struct {
		VM     string
		OK     bool
		Checks []struct {
			Name     string
			Pass     bool
			Evidence string
		}
	}
	if err := json.Unmarshal(out.Bytes(), &rep); err != nil {
		t.Fatalf("%v: %s / %s", err, out.String(), errb.String())
	}
	if rep.OK || len(rep.Checks) < 10 || !strings.Contains(errb.String(), "checks failed") {
		t.Fatalf("report %+v stderr %s", rep, errb.String())
	}
	if m, _ := filepath.Glob(filepath.Join(reports, "vm-llm-aimachine-verify-*", "evidence.json")); len(m) != 1 {
		t.Errorf("verify wrote no evidence.json under %s: %v", reports, m)
	}
	names := map[string]bool{}
	for _, c := range rep.Checks {
		names[c.Name] = true
		if c.Pass && c.Name != "no NVIDIA errors in dmesg" { // a kernel log without NVRM errors is true here
			t.Errorf("check %q passed on a bare machine: %s", c.Name, c.Evidence)
		}
	}
	for _, want := range []string{"lspci shows the GPU 10de:2d04", "the loaded module is the open kernel module", "a CUDA sample compiles with nvcc and runs", "no NVIDIA errors in dmesg"} {
		if !names[want] {
			t.Errorf("no check %q", want)
		}
	}
	_, execs := srv.Stats()
	if len(execs) > 2 {
		t.Errorf("verify used %d commands, want the facts and one verification script", len(execs))
	}
	for _, c := range execs {
		for _, bad := range []string{"apt-get", "systemctl restart", "systemctl enable", "useradd", "modprobe", "pip install"} {
			if strings.Contains(c, bad) {
				t.Errorf("verify ran a changing command (%s)", bad)
			}
		}
	}
}
