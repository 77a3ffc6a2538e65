package sim_test

import (
	"bytes"
	"context"
	"errors"
	"strings"
	"testing"

	"golang.org/x/crypto/ssh"

	"github.com/aimachine/aimachine/fakes/sim/simtest"
)

// TestNodeShell: the node's root shell interprets commands as bash -c does (sshd runs the
// exec request with root's shell). Sources: bash's "bash: line N: X: command not found" and
// exit 127 (fakes/guest/shell.go, guest.md); dash (Debian's sh) "sh: N: X: not found";
// pvesm.pm `path` prints PVE::Storage::path and a newline; `set` is API2/Storage/Config.pm
// update, whose errors carry lock_storage_config's "update storage failed: " prefix and whose
// unsupported content types Plugin.pm decode_value warns about (LvmThinPlugin.pm plugindata:
// images, rootdir); GNU coreutils' texts for cat/mv/chmod.
func TestNodeShell(t *testing.T) {
	s := startSim(t)
	jc := dialJump(t, s.Info())
	run := func(cmd, stdin string) (string, string, int) {
		t.Helper()
		sess, err := jc.NewSession()
		if err != nil {
			t.Fatal(err)
		}
		defer sess.Close()
		var out, errb bytes.Buffer
		sess.Stdout, sess.Stderr, sess.Stdin = &out, &errb, strings.NewReader(stdin)
		code := 0
		if err := sess.Run(cmd); err != nil {
			var ee *ssh.ExitError
			if !errors.As(err, &ee) {
				t.Fatalf("%s: %v", cmd, err)
			}
			code = ee.ExitStatus()
		}
		return out.String(), errb.String(), code
	}
	path, _, code := run("pvesm path local:snippets/user.yaml", "")
	path = strings.TrimSpace(path)
	if code != 0 || !strings.HasSuffix(path, "/snippets/user.yaml") {
		t.Fatalf("pvesm path: %q exit %d", path, code)
	}
	dir := strings.TrimSuffix(path, "user.yaml")
	for _, tc := range []struct {
		cmd, stdin, stdout, stderr string
		code                       int
	}{
		{cmd: "nosuchprogram --x", stderr: "bash: line 1: nosuchprogram: command not found\n", code: 127},
		{cmd: "true\nnosuchprogram", stderr: "bash: line 2: nosuchprogram: command not found\n", code: 127},
		{cmd: "sh -c 'nosuchprogram'", stderr: "sh: 1: nosuchprogram: not found\n", code: 127},
		{cmd: "pvesm set local-lvm --content snippets", code: 255,
			stderr: "storage does not support content type 'snippets'\nupdate storage failed: storage does not support content type 'none'\n"},
		{cmd: "pvesm set nosuch --content images", code: 255, stderr: "update storage failed: storage 'nosuch' does not exist\n"},
		{cmd: "pvesm set local --content iso,vztmpl,backup,import,snippets"},
		// generic file writes: redirection, mkdir -p, chmod, mv, install, sh -c, cat.
		{cmd: "mkdir -p " + dir + " && cat > " + dir + "a.yaml && chmod 0644 " + dir + "a.yaml", stdin: "one\n"},
		{cmd: "cat " + dir + "a.yaml", stdout: "one\n"},
		{cmd: "sh -c 'set -e; t=" + dir + ".b.tmp; : > $t; cat > $t; mv -f $t " + dir + "b.yaml'", stdin: "two\n"},
		{cmd: "cat " + dir + "b.yaml; cat " + dir + ".b.tmp", stdout: "two\n", stderr: "cat: " + dir + ".b.tmp: No such file or directory\n", code: 1},
		{cmd: "install -m 0644 " + dir + "b.yaml " + path + " && cat \"$(pvesm path local:snippets/user.yaml)\"", stdout: "two\n"},
		{cmd: "mv /nonexistent " + dir + "c.yaml", stderr: "mv: cannot stat '/nonexistent': No such file or directory\n", code: 1},
		{cmd: "test -n \"$(cat " + dir + "aimachine-vendor.yaml)\" && rm " + dir + "aimachine-vendor.yaml && rm " + dir + "aimachine-vendor.yaml", code: 1,
			stderr: "rm: cannot remove '" + dir + "aimachine-vendor.yaml': No such file or directory\n"},
		{cmd: "chmod 600 /nonexistent", stderr: "chmod: cannot access '/nonexistent': No such file or directory\n", code: 1},
	} {
		out, errs, code := run(tc.cmd, tc.stdin)
		if out != tc.stdout || errs != tc.stderr || code != tc.code {
			t.Errorf("%q: stdout %q stderr %q exit %d; want %q %q %d", tc.cmd, out, errs, code, tc.stdout, tc.stderr, tc.code)
		}
	}
	// the files written into the snippets directory are the storage's snippet volumes in the API
	c, err := simtest.Client(s.Info(), simtest.Token)
	if err != nil {
		t.Fatal(err)
	}
	var vols []struct {
		VolID string `json:"volid"`
		Size  uint64 `json:"size"`
	}
	if err := c.Get(context.Background(), "/nodes/pve/storage/local/content?content=snippets", &vols); err != nil {
		t.Fatal(err)
	}
	got := map[string]uint64{}
	for _, v := range vols {
		got[v.VolID] = v.Size
	}
	for _, want := range []string{"local:snippets/a.yaml", "local:snippets/b.yaml", "local:snippets/user.yaml"} {
		if got[want] != 4 {
			t.Errorf("snippet %s: size %d in %v, want 4", want, got[want], got)
		}
	}
	if _, ok := got["local:snippets/aimachine-vendor.yaml"]; ok {
		t.Errorf("the removed snippet is still listed: %v", got)
	}
	if _, ok := got["local:snippets/.b.tmp"]; ok {
		t.Errorf("the moved temp file is still listed: %v", got)
	}
}
