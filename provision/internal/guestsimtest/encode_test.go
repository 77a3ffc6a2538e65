package guestsimtest

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/aimachine/aimachine/provision/guest"
	"github.com/aimachine/aimachine/provision/internal/encode"
	"github.com/aimachine/aimachine/provision/internal/encode/encodetest"
)

// rec is a service that records what it was started with, byte for byte.
const rec = `#!/bin/sh
printf '%s' "$#" > /tmp/sink/argc
printf '%s' "$1" > /tmp/sink/arg
printf '%s' "$V" > /tmp/sink/env
printf '%s' "$F" > /tmp/sink/file
: > /tmp/sink/done
`

// Every hostile value goes through every sink into the simulated guest (whose shell is
// mvdan.cc/sh and whose systemd reads units, command lines, Environment= and EnvironmentFile=
// as systemd 255 does, see fakes/guest/unitsyntax.go): a shell word run through sudo sh -c,
// an ExecStart= argument, an Environment= assignment, an EnvironmentFile= line and a unit
// Description=. Each arrives byte-exact as exactly one argument or variable, or its encoder
// refuses it (only the values the sink cannot carry); nothing in it ever runs.
func TestHostileValuesThroughEverySink(t *testing.T) {
	w := start(t)
	r := w.dial(t)
	defer r.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	run := func(t *testing.T, cmd string) string {
		t.Helper()
		res, err := r.Run(ctx, cmd)
		if err != nil {
			t.Fatalf("%.200s: %v", cmd, err)
		}
		return res.Stdout
	}
	if err := r.Put(ctx, "/usr/local/bin/rec", 0o755, []byte(rec)); err != nil {
		t.Fatal(err)
	}
	canary := func(t *testing.T, v string) {
		t.Helper()
		if run(t, "test -e "+encodetest.Canary+" && echo RAN || echo clean") != "clean\n" {
			t.Fatalf("%s: a command in the value ran in the guest", v)
		}
	}
	hasControl := func(s string) bool {
		return strings.IndexFunc(s, func(r rune) bool { return r < 0x20 || r == 0x7f }) >= 0
	}
	refused := func(t *testing.T, sink string, err error, want bool) bool {
		t.Helper()
		var e *encode.Error
		switch {
		case err != nil && !errors.As(err, &e):
			t.Errorf("%s: the refusal is not an *encode.Error: %v", sink, err)
		case err != nil && !want:
			t.Errorf("%s refused a value it can carry: %v", sink, err)
		case err == nil && want:
			t.Errorf("%s accepted a value it cannot carry", sink)
		}
		return err != nil
	}
	for _, v := range encodetest.Corpus() {
		t.Run(v.Name, func(t *testing.T) {
			// Shell: the way the tasks run scripts (Host.Root), two shells deep.
			q, err := encode.Shell(v.S)
			if !refused(t, "shell word", err, false) {
				inner := "printf '%s' " + q
				if got := run(t, "sudo sh -c "+guest.Quote(inner)); got != v.S {
					t.Errorf("shell: got %.80q, want %.80q", got, v.S)
				}
			}
			canary(t, v.Name)

			// systemd: one unit carrying the value in every unit sink.
			arg, err := encode.ExecArg(v.S)
			if refused(t, "ExecStart= argument", err, false) {
				arg = "none"
			}
			env, err := encode.Environment("V", v.S)
			if refused(t, "Environment=", err, false) {
				env = "V=none"
			}
			line, err := encode.EnvFileLine("F", v.S)
			envFileOK := !refused(t, "EnvironmentFile= line", err, hasControl(v.S))
			desc, err := encode.UnitString(v.S)
			descOK := !refused(t, "Description=", err, hasControl(v.S) || strings.TrimSpace(v.S) != v.S || strings.HasSuffix(v.S, `\`))
			if !descOK {
				desc = "sink"
			}
			unit := "[Unit]\nDescription=" + desc + "\n\n[Service]\nType=simple\nExecStart=/usr/local/bin/rec " + arg + "\nEnvironment=" + env + "\nEnvironmentFile=/etc/sink.env\n"
			if err := r.Put(ctx, "/etc/systemd/system/sink.service", 0o644, []byte(unit)); err != nil {
				t.Fatal(err)
			}
			if err := r.Put(ctx, "/etc/sink.env", 0o600, []byte(line)); err != nil {
				t.Fatal(err)
			}
			run(t, "sudo rm -rf /tmp/sink && sudo mkdir /tmp/sink && sudo systemctl daemon-reload && sudo systemctl restart sink.service")
			for i := 0; run(t, "test -e /tmp/sink/done && echo done; true") != "done\n"; i++ {
				if i > 200 {
					t.Fatalf("the service did not run; journal:\n%s", run(t, "sudo journalctl -u sink.service -n 20 --no-pager"))
				}
				time.Sleep(10 * time.Millisecond) // test harness: the simulated service runs in a goroutine
			}
			if got := run(t, "cat /tmp/sink/argc"); got != "1" {
				t.Errorf("ExecStart=: %s arguments, want 1", got)
			}
			if got := run(t, "cat /tmp/sink/arg"); arg != "none" && got != v.S {
				t.Errorf("ExecStart=: got %.80q, want %.80q", got, v.S)
			}
			if got := run(t, "cat /tmp/sink/env"); env != "V=none" && got != v.S {
				t.Errorf("Environment=: got %.80q, want %.80q", got, v.S)
			}
			if got := run(t, "cat /tmp/sink/file"); envFileOK && got != v.S || !envFileOK && got != "" {
				t.Errorf("EnvironmentFile=: got %.80q, want %.80q", got, v.S)
			}
			if got := run(t, "systemctl show -p Description --value sink.service"); descOK && got != v.S+"\n" {
				t.Errorf("Description=: got %.80q, want %.80q", got, v.S)
			}
			canary(t, v.Name)
		})
	}
}
