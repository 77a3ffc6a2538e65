package main

import (
	"bytes"
	"context"
	"strings"
	"testing"
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
