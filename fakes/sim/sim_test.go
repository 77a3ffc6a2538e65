package sim_test

import (
	"context"
	"errors"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"
	"golang.org/x/crypto/ssh/knownhosts"

	"github.com/aimachine/aimachine/fakes/sim"
	"github.com/aimachine/aimachine/fakes/sim/simtest"
)

func startSim(t *testing.T) *sim.Sim {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	s, err := sim.Start(ctx, sim.Options{StateDir: t.TempDir(), TimeScale: 0})
	if err != nil {
		t.Fatalf("start simulator: %v", err)
	}
	t.Cleanup(func() {
		if err := s.Close(); err != nil {
			t.Errorf("close simulator: %v", err)
		}
	})
	return s
}

// dialJump logs into the jump host with the tool key, pinning its host key from known_hosts.
func dialJump(t *testing.T, e sim.Endpoint) *ssh.Client {
	t.Helper()
	signer := toolSigner(t, e)
	hk, err := knownhosts.New(e.KnownHostsFile)
	if err != nil {
		t.Fatal(err)
	}
	jc, err := ssh.Dial("tcp", e.JumpAddr, &ssh.ClientConfig{
		User: e.JumpUser, Auth: []ssh.AuthMethod{ssh.PublicKeys(signer)}, HostKeyCallback: hk, Timeout: 10 * time.Second,
	})
	if err != nil {
		t.Fatalf("dial jump host %s: %v", e.JumpHost(), err)
	}
	t.Cleanup(func() { jc.Close() })
	return jc
}

func toolSigner(t *testing.T, e sim.Endpoint) ssh.Signer {
	t.Helper()
	key, err := os.ReadFile(e.SSHKeyFile)
	if err != nil {
		t.Fatal(err)
	}
	signer, err := ssh.ParsePrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	return signer
}

// TestVM140ThroughJumpHost is the in-process end-to-end check: go-proxmox (API token + PCI
// mapping) creates and starts VM 140, x/crypto/ssh reaches the guest through the jump host.
func TestVM140ThroughJumpHost(t *testing.T) {
	s := startSim(t)
	e := s.Info()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()

	c, err := simtest.Client(e, simtest.Token)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := simtest.CreateAndStart(ctx, c, simtest.Token, simtest.VM{PubKeys: []string{e.SSHPublicKey}}); err != nil {
		t.Fatal(err)
	}

	jc := dialJump(t, e)
	conn, err := jc.Dial("tcp", "192.168.0.140:22")
	if err != nil {
		t.Fatalf("forward to the guest through the jump host: %v", err)
	}
	var guestKey ssh.PublicKey
	gconn, chans, reqs, err := ssh.NewClientConn(conn, "192.168.0.140:22", &ssh.ClientConfig{
		User: "ubuntu", Auth: []ssh.AuthMethod{ssh.PublicKeys(toolSigner(t, e))},
		HostKeyCallback: func(_ string, _ net.Addr, k ssh.PublicKey) error { guestKey = k; return nil },
		Timeout:         10 * time.Second,
	})
	if err != nil {
		t.Fatalf("log into the guest with the injected key: %v", err)
	}
	guest := ssh.NewClient(gconn, chans, reqs)
	defer guest.Close()
	if guestKey == nil || guestKey.Type() == "" {
		t.Fatal("guest presented no host key")
	}

	run := func(cmd string) (string, int) {
		t.Helper()
		sess, err := guest.NewSession()
		if err != nil {
			t.Fatalf("open a session on the guest: %v", err)
		}
		defer sess.Close()
		out, err := sess.CombinedOutput(cmd)
		var exit *ssh.ExitError
		switch {
		case err == nil:
			return string(out), 0
		case errors.As(err, &exit):
			return string(out), exit.ExitStatus()
		}
		t.Fatalf("%s: %v", cmd, err)
		return "", -1
	}
	// A fresh cloud image has no nvidia-smi at all.
	if out, code := run("nvidia-smi"); code != 127 {
		t.Fatalf("nvidia-smi on a fresh guest: exit %d, want 127 (not installed):\n%s", code, out)
	}
	// Driver packages and nvidia-smi installed, kernel module not loaded yet.
	for _, cmd := range installSteps {
		if out, code := run(cmd); code != 0 {
			t.Fatalf("%s: exit %d:\n%s", cmd, code, out)
		}
	}
	if out, code := run("nvidia-smi"); code != wantNoDriverExit || !strings.Contains(out, "couldn't communicate with the NVIDIA driver") {
		t.Fatalf("nvidia-smi before the driver is loaded: exit %d, want %d:\n%s", code, wantNoDriverExit, out)
	}

	st, err := s.Control().Stats(ctx)
	if err != nil {
		t.Fatalf("control stats: %v", err)
	}
	if st.Jump.Connections < 1 || st.Jump.Forwards < 1 {
		t.Errorf("jump host stats = %+v, want at least one connection and one forward", st.Jump)
	}
	if st.Guest.SSHConnections < 1 || st.Guest.Commands < 1 {
		t.Errorf("guest stats = %+v, want at least one SSH connection and one command", st.Guest)
	}
	if st.API.Mutating < 3 {
		t.Errorf("API stats = %+v, want the mapping, create and start counted as mutating", st.API)
	}

	// Reset removes the VM and its guest: the address is unreachable again.
	guest.Close()
	if err := s.Control().Reset(ctx); err != nil {
		t.Fatal(err)
	}
	if gs, err := s.Control().Guests(ctx); err != nil || len(gs) != 0 {
		t.Errorf("guests after Reset = %+v, %v; want none", gs, err)
	}
	if c, err := jc.Dial("tcp", "192.168.0.140:22"); err == nil {
		c.Close()
		t.Error("guest still reachable after Reset")
	} else if !strings.Contains(err.Error(), "No route to host") {
		t.Errorf("forward after Reset: %v, want sshd's \"No route to host\"", err)
	}
}

// The jump host forwards only to guests, refuses sessions, other users and unknown keys.
func TestJumpHostRefuses(t *testing.T) {
	s := startSim(t)
	e := s.Info()
	jc := dialJump(t, e)

	for _, addr := range []string{"192.168.0.141:22", "127.0.0.1:" + strings.Split(e.JumpAddr, ":")[1], "example.com:443"} {
		if c, err := jc.Dial("tcp", addr); err == nil {
			c.Close()
			t.Errorf("jump host forwarded to %s; want refusal (only running guests are reachable)", addr)
		}
	}
	// the node shell answers an unknown command as bash does (nodeshell.go)
	if sess, err := jc.NewSession(); err != nil {
		t.Errorf("session: %v", err)
	} else {
		var ee *ssh.ExitError
		if err := sess.Run("nosuchprogram /"); !errors.As(err, &ee) || ee.ExitStatus() != 127 {
			t.Errorf("nosuchprogram on the node shell: %v, want exit 127", err)
		}
		sess.Close()
	}

	other, _ := ssh.NewSignerFromKey(mustEd25519(t))
	hk, _ := knownhosts.New(e.KnownHostsFile)
	for _, tc := range []struct {
		user   string
		signer ssh.Signer
	}{{"root", other}, {"ubuntu", toolSigner(t, e)}} {
		c, err := ssh.Dial("tcp", e.JumpAddr, &ssh.ClientConfig{User: tc.user, Auth: []ssh.AuthMethod{ssh.PublicKeys(tc.signer)}, HostKeyCallback: hk})
		if err == nil {
			c.Close()
			t.Errorf("jump host accepted user %s with key %s", tc.user, ssh.FingerprintSHA256(tc.signer.PublicKey()))
		}
	}
	st := s.JumpStats()
	if st.ForwardsRefused < 3 || st.SessionsRefused < 1 || st.AuthFailures < 2 {
		t.Errorf("jump stats = %+v, want the refusals counted", st)
	}
}

func TestEnvFile(t *testing.T) {
	s := startSim(t)
	e := s.Info()
	fi, err := os.Stat(e.EnvFile)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Errorf("env file mode = %v, want 0600", fi.Mode().Perm())
	}
	if fi, err := os.Stat(e.SSHKeyFile); err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("tool key %s: mode %v err %v, want 0600", e.SSHKeyFile, fi.Mode(), err)
	}
	got, err := sim.LoadEndpoint(e.StateDir)
	if err != nil {
		t.Fatal(err)
	}
	if got.APIURL != e.APIURL || got.TokenSecret != e.TokenSecret || got.Password != e.Password ||
		got.JumpAddr != e.JumpAddr || got.Fingerprint != e.Fingerprint || got.SSHPublicKey != e.SSHPublicKey {
		t.Errorf("LoadEndpoint = %+v\nwant %+v", got, e)
	}
	vars, _ := sim.ParseEnv(mustRead(t, e.EnvFile))
	want := map[string]string{
		"PROXMOX_VE_ENDPOINT":  e.BaseURL,
		"PROXMOX_VE_API_TOKEN": "root@pam!aimachine=" + e.TokenSecret,
		"PROXMOX_VE_USERNAME":  "root@pam",
		"PROXMOX_VE_CA_FILE":   filepath.Join(e.StateDir, "pve-root-ca.pem"),
		"AIMACHINE_JUMP_HOST":  "root@" + e.JumpAddr,
		"AIMACHINE_SSH_KEY":    filepath.Join(e.StateDir, "id_ed25519"),
		"AIMACHINE_SIMULATOR":  "1",
	}
	for k, v := range want {
		if vars[k] != v {
			t.Errorf("%s = %q, want %q", k, vars[k], v)
		}
	}
	// `source pvesim.env` must reach the programs the shell starts: every line is an export.
	if bash, err := exec.LookPath("bash"); err == nil {
		out, err := exec.Command(bash, "--noprofile", "--norc", "-c", `. "$1" && env`, "bash", e.EnvFile).Output()
		if err != nil {
			t.Fatalf("source the env file: %v", err)
		}
		for k, v := range want {
			if !strings.Contains(string(out), "\n"+k+"="+v+"\n") {
				t.Errorf("after sourcing the env file, a child process does not see %s=%s", k, v)
			}
		}
	}
	if !strings.HasPrefix(e.BaseURL, "https://127.0.0.1:") || !strings.HasSuffix(e.BaseURL, "/") {
		t.Errorf("endpoint %q: want https://127.0.0.1:PORT/", e.BaseURL)
	}
	if len(strings.Split(e.Fingerprint, ":")) != 32 {
		t.Errorf("fingerprint %q: want 32 colon-separated bytes", e.Fingerprint)
	}
	kh := string(mustRead(t, e.KnownHostsFile))
	if !strings.HasPrefix(kh, "[127.0.0.1]:") {
		t.Errorf("known_hosts %q: want an entry for [127.0.0.1]:PORT", kh)
	}
	// A second start on the same state dir keeps the keys but not the secrets.
	s.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	s2, err := sim.Start(ctx, sim.Options{StateDir: e.StateDir})
	if err != nil {
		t.Fatal(err)
	}
	defer s2.Close()
	if s2.SSHPublicKey != e.SSHPublicKey || s2.JumpHostKey != e.JumpHostKey {
		t.Error("restart on the same state dir changed the SSH keys")
	}
	if s2.TokenSecret == e.TokenSecret {
		t.Error("restart reused the token secret; want a fresh one")
	}
}

func TestStartRefusesNonLoopback(t *testing.T) {
	_, err := sim.Start(context.Background(), sim.Options{APIListen: "0.0.0.0:0", StateDir: t.TempDir()})
	if err == nil || !strings.Contains(err.Error(), "not loopback") {
		t.Fatalf("Start on 0.0.0.0 = %v, want a not-loopback error", err)
	}
}

func mustRead(t *testing.T, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}
