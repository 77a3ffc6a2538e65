package steps

import (
	"context"
	"errors"
	"net"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/aimachine/aimachine/catalog"
	"github.com/aimachine/aimachine/provision"
)

func TestChooseTarget(t *testing.T) {
	up := func(context.Context) error { return nil }
	down := func(context.Context) error { return errors.New("docker is not available: rootless Docker not found") }
	for _, tc := range []struct {
		name    string
		env     map[string]string
		docker  func(context.Context) error
		want    string
		wantErr string
	}{
		{"docker answers", nil, up, TargetContainer, ""},
		{"no docker: in-process fallback", nil, down, TargetInProcess, ""},
		{"no docker under CI fails", map[string]string{"CI": "true"}, down, "", "CI=true needs the container target"},
		{"explicit inprocess", map[string]string{"AIMACHINE_TARGET": "inprocess"}, up, TargetInProcess, ""},
		{"explicit live never asks docker", map[string]string{"AIMACHINE_TARGET": "live"}, nil, TargetLive, ""},
		{"unknown target", map[string]string{"AIMACHINE_TARGET": "vagrant"}, up, "", `AIMACHINE_TARGET="vagrant"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, why, err := chooseTarget(context.Background(), func(k string) string { return tc.env[k] }, tc.docker)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("err = %v, want %q", err, tc.wantErr)
				}
				return
			}
			if err != nil || got != tc.want || why == "" {
				t.Fatalf("chooseTarget = %q (%q), %v; want %q", got, why, err, tc.want)
			}
		})
	}
}

func TestTimeScale(t *testing.T) {
	for v, want := range map[string]float64{"": 0, "0.05": 0.05, "1": 1} {
		if got, err := timeScale(func(string) string { return v }); err != nil || got != want {
			t.Errorf("timeScale(%q) = %v, %v", v, got, err)
		}
	}
	for _, v := range []string{"-1", "fast"} {
		if _, err := timeScale(func(string) string { return v }); err == nil {
			t.Errorf("timeScale(%q) accepted", v)
		}
	}
}

// The live target refuses to start without credentials or under CI, naming what is missing,
// before anything is dialled (no Docker probe, no API call).
func TestLiveTargetRefuses(t *testing.T) {
	for _, tc := range []struct {
		name string
		env  map[string]string
		want []string
	}{
		{"no credentials", map[string]string{"AIMACHINE_TARGET": "live"},
			[]string{"AIMACHINE_TARGET=live needs the credentials", "PROXMOX_VE_ENDPOINT", "PROXMOX_VE_API_TOKEN"}},
		{"endpoint without a token", map[string]string{"AIMACHINE_TARGET": "live", "PROXMOX_VE_ENDPOINT": "https://192.0.2.1:8006/"},
			[]string{"PROXMOX_VE_API_TOKEN"}},
		{"user without a password", map[string]string{"AIMACHINE_TARGET": "live", "PROXMOX_VE_ENDPOINT": "https://192.0.2.1:8006/", "PROXMOX_VE_USERNAME": "root@pam"},
			[]string{"PROXMOX_VE_PASSWORD"}},
		{"CI", map[string]string{"AIMACHINE_TARGET": "live", "CI": "true", "PROXMOX_VE_ENDPOINT": "https://192.0.2.1:8006/", "PROXMOX_VE_API_TOKEN": "root@pam!a=b"},
			[]string{"refusing to touch a real Proxmox host from CI"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tg, err := startTarget(context.Background(), func(k string) string { return tc.env[k] }, DefaultTags)
			if err == nil {
				t.Fatalf("startTarget started %+v", tg)
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q lacks %q", err, w)
				}
			}
		})
	}
	env := map[string]string{"PROXMOX_VE_ENDPOINT": "https://192.0.2.1:8006/", "PROXMOX_VE_API_TOKEN": "root@pam!a=b"}
	if err := checkLive(func(k string) string { return env[k] }); err != nil {
		t.Errorf("checkLive with credentials: %v", err)
	}
}

// A simulated target puts the tool in simulator mode: a loopback API endpoint and loopback-only
// SSH (only AIMACHINE_TARGET=live may dial anything else).
func TestInProcessTargetIsLoopbackOnly(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	tg, err := startTarget(ctx, func(k string) string { return map[string]string{"AIMACHINE_TARGET": TargetInProcess}[k] }, DefaultTags)
	if err != nil {
		t.Fatal(err)
	}
	defer tg.close()
	o, err := provision.ConnOptionsFromEnv(tg.env)
	if err != nil {
		t.Fatal(err)
	}
	if !o.Simulator {
		t.Fatalf("the in-process target's environment does not set %s=1", provision.EnvSimulator)
	}
	u, err := url.Parse(o.Endpoint)
	if err != nil {
		t.Fatal(err)
	}
	if ip := net.ParseIP(u.Hostname()); ip == nil || !ip.IsLoopback() {
		t.Errorf("endpoint %s is not loopback", o.Endpoint)
	}
	c, err := provision.Connect(ctx, o)
	if err != nil {
		t.Fatal(err)
	}
	cat, err := catalog.LoadValid("../infrastructure-catalog.yml")
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := c.SSHConfig(cat, "vm-llm-aimachine", provision.SSHOptions{Jump: tg.endpoint().JumpHost()})
	if err != nil {
		t.Fatal(err)
	}
	if !cfg.LoopbackOnly {
		t.Error("SSH to the VM is not loopback-only on a simulated target")
	}
	// Simulator mode refuses a real host's endpoint outright.
	o.Endpoint = "https://192.0.2.1:8006/"
	if _, err := provision.Connect(ctx, o); err == nil || !strings.Contains(err.Error(), "not a loopback address") {
		t.Errorf("Connect to a non-loopback endpoint in simulator mode: %v", err)
	}
}

// The godog CLI's -t/--tags reach the suite through the built binary's arguments; go test
// reads GODOG_TAGS.
func TestTagsOf(t *testing.T) {
	env := func(k string) string { return map[string]string{"GODOG_TAGS": "@fake"}[k] }
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"-t", "@live", "features"}, "@live"},
		{[]string{"--tags=@live && ~@wip", "features"}, "@live && ~@wip"},
		{[]string{"-t@live"}, "@live"},
		{[]string{"-test.run=TestFeatures", "-test.v=true"}, "@fake"},
	} {
		if got := tagsOf(tc.args, env); got != tc.want {
			t.Errorf("tagsOf(%q) = %q, want %q", tc.args, got, tc.want)
		}
	}
	if got := tagsOf(nil, func(string) string { return "" }); got != DefaultTags {
		t.Errorf("default %q", got)
	}
}

// A scenario is refused on a simulator only when the expression picked it for its @live tag.
func TestSelectedForLive(t *testing.T) {
	both := []string{"@fake", "@live"}
	for _, tc := range []struct {
		expr string
		tags []string
		want bool
	}{
		{"@live", both, true},
		{"@live && ~@wip", both, true},
		{DefaultTags, both, false}, // CI runs the @fake @live scenarios on the simulator
		{"@fake,@live", both, false},
		{"@live", []string{"@fake"}, false}, // not selected at all
	} {
		if got := selectedForLive(tc.expr, tc.tags); got != tc.want {
			t.Errorf("selectedForLive(%q, %v) = %v, want %v", tc.expr, tc.tags, got, tc.want)
		}
	}
	if !requiresLive("@live && ~@wip") || requiresLive(DefaultTags) || requiresLive("@fake,@live") {
		t.Error("requiresLive")
	}
}

// `-t @live` without the live target refuses before any simulator starts, naming the target
// problem: AIMACHINE_TARGET and the missing credentials.
func TestLiveTagsWithoutLiveTargetRefuse(t *testing.T) {
	for _, env := range []map[string]string{
		{},
		{"AIMACHINE_TARGET": TargetInProcess},
	} {
		tg, err := startTarget(context.Background(), func(k string) string { return env[k] }, "@live && ~@wip")
		if err == nil {
			tg.close()
			t.Fatalf("%v: started a %s target for @live scenarios", env, tg.kind)
		}
		for _, want := range []string{"select @live scenarios", "refused", "AIMACHINE_TARGET=live", "missing environment: PROXMOX_VE_ENDPOINT"} {
			if !strings.Contains(err.Error(), want) {
				t.Errorf("%v: refusal %q lacks %q", env, err, want)
			}
		}
		if !errors.Is(err, errLiveRefused) {
			t.Errorf("not errLiveRefused: %v", err)
		}
	}
}

// The live target's first line names the host, never credentials an endpoint URL carries
// (provision refuses such an endpoint later, but this line is printed before that check).
func TestEndpointHostDropsCredentials(t *testing.T) {
	for in, want := range map[string]string{
		"https://root:s3cret@pve.example:8006/":  "https://pve.example:8006/",
		"https://pve.example:8006/?token=s3cret": "https://pve.example:8006/",
		"%%%":                                    "(unparsable endpoint)",
	} {
		if got := endpointHost(in); got != want || strings.Contains(got, "s3cret") {
			t.Errorf("endpointHost(%q) = %q, want %q", in, got, want)
		}
	}
}
