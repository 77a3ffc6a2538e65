package steps

import (
	"context"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"
)

// The live target refuses to start without credentials, names what is missing and dials
// nothing: its credential check exits before any go or godog command runs.
func TestDeployTargetWithoutCredentials(t *testing.T) {
	if _, err := exec.LookPath("make"); err != nil {
		t.Skip("make is not installed")
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	out, code, err := MakeWithoutCredentials(ctx, "..", "deploy-vm-llm-aimachine")
	if err != nil {
		t.Fatal(err)
	}
	if code == 0 {
		t.Fatalf("make deploy-vm-llm-aimachine without credentials exited 0:\n%s", out)
	}
	for _, want := range []string{"missing credentials", "PROXMOX_VE_ENDPOINT", "PROXMOX_VE_API_TOKEN", "PROXMOX_VE_USERNAME+PROXMOX_VE_PASSWORD"} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
	if strings.Contains(out, "godog") || strings.Contains(out, "go test") {
		t.Errorf("the target ran something after a failed credential check:\n%s", out)
	}
}

// Under CI=true the target refuses before looking at credentials.
func TestDeployTargetRefusesCI(t *testing.T) {
	if _, err := exec.LookPath("make"); err != nil {
		t.Skip("make is not installed")
	}
	cmd := exec.Command("make", "--no-print-directory", "deploy-vm-llm-aimachine")
	cmd.Dir = ".."
	cmd.Env = append(os.Environ(), "CI=true", "PROXMOX_VE_ENDPOINT=https://127.0.0.1:1/", "PROXMOX_VE_API_TOKEN=a@b!c=d")
	out, err := cmd.CombinedOutput()
	if err == nil || !strings.Contains(string(out), "refusing to touch a real Proxmox host from CI") {
		t.Fatalf("make with CI=true: %v\n%s", err, out)
	}
}

func TestMakeRecipe(t *testing.T) {
	data, err := os.ReadFile("../Makefile")
	if err != nil {
		t.Fatal(err)
	}
	r, err := makeRecipe(string(data), "deploy-vm-llm-aimachine")
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"AIMACHINE_STOP_ON_FAILURE=1", "@live", "--strict", "AIMACHINE_TARGET=live"} {
		if !strings.Contains(r, want) {
			t.Errorf("recipe lacks %q:\n%s", want, r)
		}
	}
	if _, err := makeRecipe(string(data), "no-such-target"); err == nil {
		t.Error("makeRecipe found a target that does not exist")
	}
}

// make demo and make sim say what they build before the first (slow) build; make clean
// removes what the targets leave behind.
func TestMakeSaysWhatItBuildsAndCleans(t *testing.T) {
	if _, err := exec.LookPath("make"); err != nil {
		t.Skip("make is not installed")
	}
	for _, target := range []string{"demo", "sim"} {
		out, err := exec.Command("make", "-n", "--no-print-directory", "-C", "..", target).CombinedOutput()
		if err != nil {
			t.Fatalf("make -n %s: %v\n%s", target, err, out)
		}
		s := string(out)
		say, build := strings.Index(s, "building bin/aimachine"), strings.Index(s, "go build")
		if say < 0 || build < 0 || say > build {
			t.Errorf("make %s does not say what it builds before building:\n%s", target, s)
		}
	}
	out, err := exec.Command("make", "-n", "--no-print-directory", "-C", "..", "clean").CombinedOutput()
	if err != nil || !strings.Contains(string(out), "rm -rf bin reports .state") {
		t.Errorf("make -n clean: %v\n%s", err, out)
	}
}
