package e2e

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/aimachine/aimachine/catalog"
	"github.com/aimachine/aimachine/provision"
)

// hostileKey would run `touch /tmp/pwned` as root wherever a shell read it, break a unit file
// with its quotes and %, and expand ${HOME} and $(…) wherever systemd or a shell substituted.
const hostileKey = `k$(touch /tmp/pwned) "q" 'x' ` + "`touch /tmp/pwned`" + ` %n 100% ${HOME} $VLLM_API_KEY \ end`

// A full deploy (in-process simulator: fake PVE, simulated guest) with a hostile vLLM API key
// succeeds; vLLM answers 200 with exactly that key and 401 without; nothing ran in the guest;
// the files holding the key, and the applied markers, are root-owned 0600; no file readable by
// the unprivileged login holds the key; the transcript never shows it.
func TestDeployWithAHostileAPIKey(t *testing.T) {
	s, c := startSim(t)
	e := s.Info()
	cat := testCatalog(t, e)
	vm := &cat.VMs[0]
	vm.Services.VLLM = &catalog.VLLM{Enabled: true, Version: "0.28.0", Model: "Qwen/Qwen2.5-3B-Instruct", APIKeyEnv: "HOSTILE_VLLM_KEY", MaxModelLen: 8192}
	vm.Services.Ollama = &catalog.Ollama{Enabled: true}
	cat.ApplyDefaults()
	reports := t.TempDir()
	o := provision.DeployOptions{SSH: sshOptions(t, e), AgentTimeout: 20 * time.Second, CloudInitTimeout: 20 * time.Second,
		Guest: provision.GuestOptions{ReportDir: reports, Getenv: func(k string) string {
			if k == "HOSTILE_VLLM_KEY" {
				return hostileKey
			}
			return ""
		}}}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	res, err := c.Deploy(ctx, cat, vm.Name, o)
	if err != nil {
		t.Fatalf("deploy with a hostile key: %v", err)
	}
	r := res.Runner
	defer r.Close()
	if !res.Proof.OK() {
		t.Fatalf("proof failed: %+v", res.Proof.Failed())
	}

	run := func(cmd string) string {
		t.Helper()
		out, err := r.Run(ctx, cmd)
		if err != nil {
			t.Fatalf("%s: %v", cmd, err)
		}
		return out.Stdout
	}
	if got := run("test -e /tmp/pwned && echo RAN || echo clean"); got != "clean\n" {
		t.Fatalf("a command in the key ran in the guest (/tmp/pwned exists)")
	}
	// The key works against vLLM, sent as the client would send it.
	if err := r.Put(ctx, "/tmp/client.header", 0o600, []byte("Authorization: Bearer "+hostileKey+"\n")); err != nil {
		t.Fatal(err)
	}
	url := "http://" + vm.IP() + ":8000/v1/models"
	if got := run("sudo curl -s -o /dev/null -w '%{http_code}' --header @/tmp/client.header " + url + "; echo; curl -s -o /dev/null -w '%{http_code}' " + url); got != "200\n401" {
		t.Errorf("/v1/models with the key, then without: got %q, want 200 then 401", got)
	}
	if err := r.Put(ctx, "/tmp/client.header", 0o600, []byte("Authorization: Bearer k\n")); err != nil {
		t.Fatal(err)
	}
	if got := run("sudo curl -s -o /dev/null -w '%{http_code}' --header @/tmp/client.header " + url); got != "401" {
		t.Errorf("/v1/models with a prefix of the key: %q, want 401 (the key must arrive whole, not cut at the first $)", got)
	}
	run("sudo rm -f /tmp/client.header")

	// Secrets at rest: files holding the key or derived from it are root's, 0600.
	want := "600 root root /etc/vllm/vllm.env\n600 root root /etc/vllm/auth.header\n600 root root /var/lib/aimachine/vllm.applied\n600 root root /var/lib/aimachine/ollama.applied\n"
	if got := run("sudo stat -c '%a %U %G %n' /etc/vllm/vllm.env /etc/vllm/auth.header /var/lib/aimachine/vllm.applied /var/lib/aimachine/ollama.applied"); got != want {
		t.Errorf("modes and owners:\n%s\nwant\n%s", got, want)
	}
	marker := run("sudo cat /var/lib/aimachine/vllm.applied")
	if f := strings.Fields(marker); len(f) != 3 || f[0] != "hmac-sha256" || len(f[1]) != 32 {
		t.Errorf("the applied marker is not a salted HMAC: %q", marker)
	}
	// The unprivileged login finds the key in no file it can read (root does: the search works).
	search := "grep -rlF -e 'k$(touch /tmp/pwned)' /etc /var/lib /opt /tmp /run /home 2>/dev/null; true"
	if got := run("sudo sh -c " + shellQuote(search)); !strings.Contains(got, "/etc/vllm/auth.header\n") {
		t.Fatalf("root's search for the key does not find /etc/vllm/auth.header: %q", got)
	}
	if got := run(search); got != "" {
		t.Errorf("files readable by the login user hold the key: %s", got)
	}
	// Never in the log bundle.
	filepath.WalkDir(reports, func(p string, d os.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			b, _ := os.ReadFile(p)
			if strings.Contains(string(b), "touch /tmp/pwned") {
				t.Errorf("%s shows the key", p)
			}
		}
		return nil
	})
}

func shellQuote(s string) string { return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'" }

// A key the guest cannot carry intact (a newline would add a variable to vLLM's environment)
// is refused before the first API call changes anything, and the error never shows it.
func TestDeployRefusesAnUnrepresentableKeyBeforeCreating(t *testing.T) {
	s, c := startSim(t)
	e := s.Info()
	cat := testCatalog(t, e)
	vm := &cat.VMs[0]
	vm.Services.VLLM = &catalog.VLLM{Enabled: true, Version: "0.28.0", Model: "Qwen/Qwen2.5-3B-Instruct", APIKeyEnv: "BAD_VLLM_KEY"}
	cat.ApplyDefaults()
	key := "sk-secret-part\nVLLM_EXTRA=injected"
	o := provision.DeployOptions{SSH: sshOptions(t, e), Guest: provision.GuestOptions{ReportDir: t.TempDir(),
		Getenv: func(k string) string { return map[string]string{"BAD_VLLM_KEY": key}[k] }}}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	before := s.API().Stats().Mutating
	res, err := c.Deploy(ctx, cat, vm.Name, o)
	if res != nil && res.Runner != nil {
		res.Runner.Close()
	}
	var te *provision.TaskError
	if !errors.As(err, &te) || !errors.Is(err, provision.ErrGuestValue) || te.Task != "check the values written into the guest" {
		t.Fatalf("want the guest-value refusal, got %v", err)
	}
	if strings.Contains(err.Error(), "sk-secret-part") || strings.Contains(err.Error(), "injected") {
		t.Errorf("the refusal shows the key: %v", err)
	}
	if !strings.Contains(err.Error(), "the vLLM API key") {
		t.Errorf("the refusal does not name the key: %v", err)
	}
	if d := s.API().Stats().Mutating - before; d != 0 || res.Created {
		t.Errorf("%d mutating API calls (created=%v) before refusing", d, res.Created)
	}
}
