package guest

import (
	"bytes"
	"context"
	"encoding/pem"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"
)

// TestRealOpenSSHClient drives the guest's sshd with the ssh binary through a loopback listener
// that forwards to DialGuest (what the simulator's jump host does in memory).
func TestRealOpenSSHClient(t *testing.T) {
	sshBin, err := exec.LookPath("ssh")
	if err != nil {
		t.Skip("no OpenSSH client installed")
	}
	_, priv, _ := ed25519GenerateKey()
	signer, _ := ssh.NewSignerFromKey(priv)
	vm := newVMWithSigner(t, signer).ready()

	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				g, err := vm.f.DialGuest(context.Background(), "192.168.0.140:22")
				if err != nil {
					return
				}
				defer g.Close()
				go io.Copy(g, c)
				io.Copy(c, g)
			}()
		}
	}()
	port := ln.Addr().(*net.TCPAddr).Port
	dir := t.TempDir()
	blk, err := ssh.MarshalPrivateKey(priv, "")
	if err != nil {
		t.Fatal(err)
	}
	keyFile := filepath.Join(dir, "id_ed25519")
	os.WriteFile(keyFile, pem.EncodeToMemory(blk), 0o600)
	var kh bytes.Buffer
	for _, k := range vm.g.HostKeys() {
		fmt.Fprintf(&kh, "[127.0.0.1]:%d %s", port, ssh.MarshalAuthorizedKey(k))
	}
	khFile := filepath.Join(dir, "known_hosts")
	os.WriteFile(khFile, kh.Bytes(), 0o600)
	base := []string{"-F", "/dev/null", "-i", keyFile, "-o", "IdentitiesOnly=yes", "-o", "BatchMode=yes", "-o", "UserKnownHostsFile=" + khFile,
		"-o", "StrictHostKeyChecking=yes", "-o", "ConnectTimeout=10", "-p", fmt.Sprint(port), "ubuntu@127.0.0.1"}
	run := func(stdin io.Reader, extra []string, cmd string) (string, string, int) {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		args := append(append(append([]string{}, extra...), base...), cmd)
		c := exec.CommandContext(ctx, sshBin, args...)
		var o, e bytes.Buffer
		c.Stdout, c.Stderr, c.Stdin = &o, &e, stdin
		err := c.Run()
		code := 0
		if ee, ok := err.(*exec.ExitError); ok {
			code = ee.ExitCode()
		} else if err != nil {
			t.Fatalf("ssh: %v", err)
		}
		return o.String(), e.String(), code
	}
	out, errOut, code := run(nil, nil, "sudo whoami; id -un; echo oops >&2; exit 3")
	if out != "root\nubuntu\n" || !strings.Contains(errOut, "oops") || code != 3 {
		t.Errorf("exec: stdout %q stderr %q code %d", out, errOut, code)
	}
	out, _, code = run(strings.NewReader("piped input\n"), nil, "cat | tr a-z A-Z")
	if out != "PIPED INPUT\n" || code != 0 {
		t.Errorf("stdin: %q %d", out, code)
	}
	// env: only LANG/LC_* are accepted (AcceptEnv LANG LC_*), like Ubuntu's sshd
	out, _, _ = run(nil, []string{"-o", "SetEnv=LC_AIMACHINE=yes FOO=bar"}, "echo ${LC_AIMACHINE:-unset} ${FOO:-unset}")
	if out != "yes unset\n" {
		t.Errorf("env: %q", out)
	}
	// keepalives are answered: with 1 s interval and a count of 1 the client would give up otherwise
	pr, pw := io.Pipe()
	go func() { time.Sleep(3500 * time.Millisecond); pw.Write([]byte("late\n")); pw.Close() }()
	out, errOut, code = run(pr, []string{"-o", "ServerAliveInterval=1", "-o", "ServerAliveCountMax=1"}, "read x; echo got $x")
	if out != "got late\n" || code != 0 {
		t.Errorf("keepalive: %q %q %d", out, errOut, code)
	}
	// a key that cloud-init did not deliver is refused
	_, other, _ := ed25519GenerateKey()
	blk2, _ := ssh.MarshalPrivateKey(other, "")
	os.WriteFile(keyFile, pem.EncodeToMemory(blk2), 0o600)
	_, errOut, code = run(nil, nil, "true")
	if code != 255 || !strings.Contains(errOut, "Permission denied (publickey)") {
		t.Errorf("foreign key: %d %q", code, errOut)
	}
}
