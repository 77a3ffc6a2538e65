package main

import (
	"bytes"
	"context"
	"regexp"
	"strings"
	"testing"

	"github.com/aimachine/aimachine/provision"
)

func TestHelpListsRegisteredCommands(t *testing.T) {
	var out, errb bytes.Buffer
	if code := run(context.Background(), []string{"help"}, &out, &errb); code != 0 {
		t.Fatalf("help exit %d, stderr %q", code, errb.String())
	}
	for name := range commands {
		if !strings.Contains(out.String(), "  "+name+" ") {
			t.Errorf("help does not list %q:\n%s", name, out.String())
		}
	}
	if len(commands) == 0 {
		t.Fatal("no commands registered")
	}
}

func TestUnknownCommandExits2WithHint(t *testing.T) {
	var out, errb bytes.Buffer
	if code := run(context.Background(), []string{"frobnicate"}, &out, &errb); code != 2 {
		t.Fatalf("exit %d, want 2", code)
	}
	if !strings.Contains(errb.String(), `unknown command "frobnicate"`) || !strings.Contains(errb.String(), "aimachine help") {
		t.Errorf("stderr %q lacks the error and hint", errb.String())
	}
}

func TestNoArgsPrintsUsage(t *testing.T) {
	var out, errb bytes.Buffer
	if code := run(context.Background(), nil, &out, &errb); code != 2 {
		t.Fatalf("exit %d, want 2", code)
	}
	if !strings.Contains(errb.String(), "Usage: aimachine") {
		t.Errorf("stderr %q lacks usage", errb.String())
	}
}

// help names the environment the commands read.
func TestHelpNamesTheEnvironment(t *testing.T) {
	var out, errb bytes.Buffer
	run(context.Background(), []string{"help"}, &out, &errb)
	for _, env := range []string{provision.EnvEndpoint, provision.EnvAPIToken, provision.EnvUsername, provision.EnvPassword,
		provision.EnvFingerprint, provision.EnvCAFile, provision.EnvInsecure, provision.EnvSimulator, envSSHKey, envKnownHosts, envJumpHost, "api_key_env"} {
		if !strings.Contains(out.String(), env) {
			t.Errorf("help does not name %s:\n%s", env, out.String())
		}
	}
}

// Every flag a command defines appears in its -h usage line, and -h exits 0 with the usage on
// stderr (nothing on stdout).
func TestEachCommandsUsageLineNamesItsFlags(t *testing.T) {
	flagRE := regexp.MustCompile(`(?m)^  -([a-z-]+)`)
	for name := range commands {
		if name == "catalog" { // subcommands, each with its own flags
			continue
		}
		var out, errb bytes.Buffer
		if code := run(context.Background(), []string{name, "-h"}, &out, &errb); code != 0 || out.Len() != 0 {
			t.Errorf("%s -h: exit %d, stdout %q", name, code, out.String())
			continue
		}
		usage, defaults, _ := strings.Cut(errb.String(), "\n  -")
		defaults = "  -" + defaults
		flags := flagRE.FindAllStringSubmatch(defaults, -1)
		if len(flags) == 0 {
			t.Errorf("%s -h lists no flags:\n%s", name, errb.String())
		}
		for _, f := range flags {
			if !strings.Contains(usage, "--"+f[1]+" ") && !strings.Contains(usage, "--"+f[1]+"]") && !strings.Contains(usage, "["+"-"+f[1]+"]") {
				t.Errorf("%s: the usage line does not mention --%s:\n%s", name, f[1], usage)
			}
		}
	}
}
