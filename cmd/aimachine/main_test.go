package main

import (
	"bytes"
	"context"
	"runtime/debug"
	"strings"
	"testing"

	"github.com/aimachine/aimachine/provision"
)

func runArgs(args ...string) (int, string, string) {
	var out, errb bytes.Buffer
	code := run(context.Background(), args, &out, &errb)
	return code, out.String(), errb.String()
}

// nativeVerbs are the verbs of the command tree.
var nativeVerbs = []string{"plan", "deploy", "verify", "bench", "destroy", "doctor", "prepare", "status", "catalog", "version", "completion", "help"}

func TestHelpListsEveryCommand(t *testing.T) {
	code, out, errOut := runArgs("help")
	if code != 0 {
		t.Fatalf("help exit %d, stderr %q", code, errOut)
	}
	for _, name := range nativeVerbs {
		if !strings.Contains(out, "  "+name+" ") {
			t.Errorf("help does not list %q:\n%s", name, out)
		}
	}
}

func TestUnknownCommandExits2WithOneLineAndHint(t *testing.T) {
	code, _, errOut := runArgs("deplyo")
	if code != 2 {
		t.Fatalf("exit %d, want 2", code)
	}
	if !strings.Contains(errOut, `unknown command "deplyo"`) || !strings.Contains(errOut, "did you mean deploy?") || !strings.Contains(errOut, "aimachine help") {
		t.Errorf("stderr %q lacks the error, the suggestion or the hint", errOut)
	}
	if n := strings.Count(strings.TrimSpace(errOut), "\n"); n != 0 {
		t.Errorf("a usage error is one line, got %d:\n%s", n+1, errOut)
	}
}

func TestNoArgsPrintsUsageAndExits2(t *testing.T) {
	code, out, errOut := runArgs()
	if code != 2 || out != "" || !strings.Contains(errOut, "Usage:") || !strings.Contains(errOut, "aimachine [command]") {
		t.Fatalf("exit %d, stdout %q, stderr %q", code, out, errOut)
	}
}

// help names the environment the commands read.
func TestHelpNamesTheEnvironment(t *testing.T) {
	_, out, _ := runArgs("help")
	for _, env := range []string{provision.EnvEndpoint, provision.EnvAPIToken, provision.EnvUsername, provision.EnvPassword,
		provision.EnvFingerprint, provision.EnvCAFile, provision.EnvInsecure, provision.EnvSimulator, envSSHKey, envKnownHosts, envJumpHost, envReports, "NO_COLOR", "api_key_env"} {
		if !strings.Contains(out, env) {
			t.Errorf("help does not name %s:\n%s", env, out)
		}
	}
}

// `help CMD` and `CMD --help` print the same page, with examples and every flag, on stdout,
// exit 0.
func TestHelpOfEachCommandHasExamplesAndFlags(t *testing.T) {
	for _, tc := range []struct {
		cmd   []string
		flags []string
	}{
		{[]string{"deploy"}, []string{"--vm", "--catalog", "--keep-on-failure", "--infra-only", "--replace-host-key", "--host", "--accept-new-host-key", "--ssh-key", "--known-hosts", "--jump", "--json", "--reports", "-v, --verbose", "--insecure"}},
		{[]string{"plan"}, []string{"--vm", "--catalog", "--detailed-exitcode", "--json", "--infra-only", "--known-hosts"}},
		{[]string{"verify"}, []string{"--vm", "--catalog", "--host", "--json", "--ssh-key"}},
		{[]string{"destroy"}, []string{"--vm", "--yes", "--known-hosts"}},
		{[]string{"doctor"}, []string{"--vm", "--all", "--catalog", "--insecure", "--json"}},
		{[]string{"prepare"}, []string{"--vm", "--all", "--catalog", "--insecure", "--yes", "--node-ssh", "--ssh-key", "--known-hosts"}},
		{[]string{"catalog", "validate"}, []string{"--catalog"}},
		{[]string{"version"}, []string{"--json"}},
	} {
		code, viaHelp, _ := runArgs(append([]string{"help"}, tc.cmd...)...)
		code2, viaFlag, _ := runArgs(append(tc.cmd, "--help")...)
		if code != 0 || code2 != 0 || viaHelp != viaFlag {
			t.Errorf("%v: help exit %d, --help exit %d; same page: %v", tc.cmd, code, code2, viaHelp == viaFlag)
		}
		if !strings.Contains(viaHelp, "Examples:") || !strings.Contains(viaHelp, "  aimachine "+tc.cmd[0]) {
			t.Errorf("%v: no examples:\n%s", tc.cmd, viaHelp)
		}
		for _, f := range tc.flags {
			if !strings.Contains(viaHelp, f) {
				t.Errorf("%v: help lacks %s:\n%s", tc.cmd, f, viaHelp)
			}
		}
	}
}

// A usage error is one line naming the command, the problem and a hint, exit 2 — never the
// whole flag list.
func TestUsageErrorsAreOneLineWithAHint(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"deploy", "--frobnicate"}, "aimachine deploy: unknown flag: --frobnicate (hint: 'aimachine deploy --help'"},
		{[]string{"deploy"}, "aimachine deploy: --vm NAME is required"},
		{[]string{"plan", "a", "b"}, `aimachine plan: unexpected arguments ["b"]`},
		{[]string{"plan", "a", "--vm", "b"}, `aimachine plan: VM "a" given twice`},
		{[]string{"verify", "-vm", "x"}, "aimachine verify: unknown shorthand flag: 'v' in -vm (hint: long flags take two dashes: --vm)"},
		{[]string{"deploy", "-vm", "x"}, "aimachine deploy: unknown shorthand flag: 'm' in -m (hint: long flags take two dashes: --vm)"}, // -v is --verbose
		{[]string{"version", "extra"}, `aimachine version: unknown command "extra"`},
		{[]string{"catalog"}, "aimachine catalog: a subcommand is required: validate or schema"},
		{[]string{"doctor"}, "aimachine doctor: --vm NAME is required"},
		{[]string{"doctor", "--vm", "a", "--all"}, "aimachine doctor: --all and a VM name"},
		{[]string{"doctor", "a", "b"}, `aimachine doctor: unexpected arguments ["b"]`},
		{[]string{"prepare"}, "aimachine prepare: --vm NAME is required"},
		{[]string{"prepare", "a", "--all", "--yes"}, "aimachine prepare: --all and a VM name"},
		{[]string{"prepare", "--frobnicate"}, "aimachine prepare: unknown flag: --frobnicate (hint: 'aimachine prepare --help'"},
	} {
		code, out, errOut := runArgs(tc.args...)
		if code != 2 || !strings.HasPrefix(errOut, tc.want) || strings.Count(strings.TrimSpace(errOut), "\n") != 0 || !strings.Contains(errOut, "hint:") || out != "" {
			t.Errorf("%q: exit %d, stdout %q, stderr %q; want exit 2 and one line starting %q with a hint", tc.args, code, out, errOut, tc.want)
		}
	}
}

// The VM name is accepted as the first argument wherever --vm is.
func TestPositionalVMNameWorksLikeVM(t *testing.T) {
	for _, verb := range []string{"plan", "deploy", "destroy", "verify", "doctor", "prepare"} {
		f := infraFlags{}
		if err := f.resolve([]string{"vm-llm-aimachine"}); err != nil || f.vm != "vm-llm-aimachine" {
			t.Fatalf("%s: resolve: %v %q", verb, err, f.vm)
		}
		// Same name both ways is fine; the catalog is missing, so the command gets past parsing.
		args := []string{verb, "vm-llm-aimachine", "--vm", "vm-llm-aimachine", "--catalog", "no-such.yml"}
		if verb == "destroy" {
			args = append(args, "--yes")
		}
		code, _, errOut := runArgs(args...)
		if code != 1 || !strings.Contains(errOut, "no-such.yml") {
			t.Errorf("%s NAME: exit %d, stderr %q; want the catalog error (exit 1)", verb, code, errOut)
		}
	}
}

func TestVersionNamesModuleAndCommit(t *testing.T) {
	v := readVersion(func() (*debug.BuildInfo, bool) {
		return &debug.BuildInfo{GoVersion: "go1.26.0", Main: debug.Module{Path: "github.com/aimachine/aimachine", Version: "v0.3.0"},
			Settings: []debug.BuildSetting{{Key: "vcs.revision", Value: "91680d2abc"}, {Key: "vcs.time", Value: "2026-12-05T20:00:00Z"}, {Key: "vcs.modified", Value: "true"}}}, true
	})
	want := "aimachine v0.3.0 (github.com/aimachine/aimachine), commit 91680d2abc of 2026-12-05T20:00:00Z with uncommitted changes, go1.26.0"
	if v.String() != want {
		t.Errorf("got  %q\nwant %q", v.String(), want)
	}
	// Under go test there is no VCS stamp: the line says so instead of inventing one.
	code, out, _ := runArgs("version")
	if code != 0 || !strings.HasPrefix(out, "aimachine ") || !strings.Contains(out, "commit") {
		t.Errorf("version: exit %d, %q", code, out)
	}
	if code, out2, _ := runArgs("--version"); code != 0 || out2 != out {
		t.Errorf("--version: exit %d, %q; want the version line %q", code, out2, out)
	}
}

// Completion scripts for bash, zsh and fish come from cobra and name the binary.
func TestCompletionScripts(t *testing.T) {
	for shell, marker := range map[string]string{"bash": "__start_aimachine", "zsh": "#compdef aimachine", "fish": "complete -c aimachine"} {
		code, out, errOut := runArgs("completion", shell)
		if code != 0 || !strings.Contains(out, marker) {
			t.Errorf("completion %s: exit %d, stderr %q, no %q in the script", shell, code, errOut, marker)
		}
	}
	// The hidden completion entry point completes VM names from the catalog.
	code, out, _ := runArgs("__complete", "plan", "--catalog", "../../infrastructure-catalog.yml", "vm-")
	if code != 0 || !strings.Contains(out, "vm-llm-aimachine") {
		t.Errorf("__complete plan: exit %d\n%s", code, out)
	}
}
