package container_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/aimachine/aimachine/fakes/container"
	"github.com/aimachine/aimachine/fakes/sim"
	"github.com/aimachine/aimachine/fakes/sim/simtest"
)

// requireDocker skips without Docker, except in CI (CI=true), where it fails.
func requireDocker(t *testing.T) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := container.DockerAvailable(ctx); err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("CI=true but %v", err)
		}
		t.Skipf("skipping: %v", err)
	}
}

// TestDoneWhen is the acceptance check: pvesim in a container, go-proxmox creates and
// starts VM 140 (root@pam ticket, raw hostpci), and a real OpenSSH client reaches the guest
// through the simulator's jump host (ssh -J, the jump host key pinned, BatchMode) with the
// key injected by cloud-init; nvidia-smi fails without a loaded driver and prints the GPU table
// once the driver is installed and loaded.
func TestDoneWhen(t *testing.T) {
	requireDocker(t)
	sshBin, err := exec.LookPath("ssh")
	if err != nil {
		t.Fatalf("OpenSSH client not found (hint: apt-get install -y openssh-client): %v", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 8*time.Minute)
	defer cancel()

	var logs bytes.Buffer
	s, err := container.Start(ctx, container.Options{StateDir: t.TempDir(), Log: &logs})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("pvesim container log:\n%s", logs.String())
		}
		if err := s.Close(); err != nil {
			t.Errorf("close: %v", err)
		}
	})
	e := s.Info()
	if !strings.HasPrefix(e.APIURL, "https://127.0.0.1:") || !strings.HasPrefix(e.JumpAddr, "127.0.0.1:") {
		t.Fatalf("endpoints %s / %s: want published on 127.0.0.1", e.APIURL, e.JumpAddr)
	}
	loaded, err := sim.LoadEndpoint(e.StateDir)
	if err != nil {
		t.Fatalf("rewritten env file: %v", err)
	}
	if loaded.APIURL != e.APIURL || loaded.JumpAddr != e.JumpAddr || loaded.TokenSecret != e.TokenSecret {
		t.Errorf("env file endpoint %+v does not match %+v", loaded, e)
	}

	c, err := simtest.Client(e, simtest.RootTicket)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := simtest.CreateAndStart(ctx, c, simtest.RootTicket, simtest.VM{PubKeys: []string{e.SSHPublicKey}}); err != nil {
		t.Fatal(err)
	}

	cfg := writeSSHConfig(t, e)
	guestSSH := func(command string) (string, int) {
		t.Helper()
		cctx, ccancel := context.WithTimeout(ctx, 3*time.Minute)
		defer ccancel()
		cmd := exec.CommandContext(cctx, sshBin, "-F", cfg, "-i", e.SSHKeyFile,
			"-J", e.JumpHost(), "ubuntu@192.168.0.140", command)
		var out bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &out
		err := cmd.Run()
		var exit *exec.ExitError
		switch {
		case err == nil:
			return out.String(), 0
		case errors.As(err, &exit):
			if exit.ExitCode() == 255 {
				t.Fatalf("ssh %q: connection failed (exit 255):\n%s", command, out.String())
			}
			return out.String(), exit.ExitCode()
		default:
			t.Fatalf("ssh %q: %v\n%s", command, err, out.String())
		}
		return "", -1
	}

	if out, code := guestSSH("nvidia-smi"); code != wantNoUtilsExit {
		t.Fatalf("nvidia-smi on a fresh guest: exit %d, want %d:\n%s", code, wantNoUtilsExit, out)
	}
	for _, step := range installSteps {
		if out, code := guestSSH(step); code != 0 {
			t.Fatalf("%s: exit %d:\n%s", step, code, out)
		}
	}
	out, code := guestSSH("nvidia-smi")
	if code != 9 || !strings.Contains(out, "couldn't communicate with the NVIDIA driver") {
		t.Fatalf("nvidia-smi with the driver installed but not loaded: exit %d, want 9:\n%s", code, out)
	}
	if out, code := guestSSH("sudo modprobe nvidia"); code != 0 {
		t.Fatalf("sudo modprobe nvidia: exit %d:\n%s", code, out)
	}
	out, code = guestSSH("nvidia-smi")
	if code != 0 {
		t.Fatalf("nvidia-smi after modprobe: exit %d:\n%s", code, out)
	}
	for _, want := range []string{"NVIDIA-SMI 580.", "Driver Version: 580.", "NVIDIA GeForce RTX 5060 Ti", "00000000:01:00.0", "16311MiB"} {
		if !strings.Contains(out, want) {
			t.Errorf("nvidia-smi table lacks %q:\n%s", want, out)
		}
	}

	st, err := s.Control().Stats(ctx)
	if err != nil {
		t.Fatalf("control stats: %v", err)
	}
	if st.Jump.Forwards < 1 || st.Guest.SSHConnections < 1 {
		t.Errorf("stats %+v / %+v: want jump forwards and guest SSH connections counted", st.Jump, st.Guest)
	}
}

// writeSSHConfig pins the jump host's key (StrictHostKeyChecking=yes) from the simulator's
// known_hosts; the guest's key (a new VM) is learnt on first use into a separate file.
// ssh -J passes only -F (not -o) to the jump connection, hence a config file.
func writeSSHConfig(t *testing.T, e sim.Endpoint) string {
	t.Helper()
	dir := t.TempDir()
	host, port, _ := strings.Cut(e.JumpAddr, ":")
	cfg := fmt.Sprintf(`Host %s
  Port %s
  User %s
  IdentityFile %s
  UserKnownHostsFile %s
  StrictHostKeyChecking yes
Host 192.168.0.140
  User ubuntu
  IdentityFile %s
  UserKnownHostsFile %s
  StrictHostKeyChecking accept-new
Host *
  BatchMode yes
  IdentitiesOnly yes
  PasswordAuthentication no
  KbdInteractiveAuthentication no
  GlobalKnownHostsFile /dev/null
  LogLevel ERROR
  ConnectTimeout 20
`, host, port, e.JumpUser, e.SSHKeyFile, e.KnownHostsFile, e.SSHKeyFile, filepath.Join(dir, "guest_known_hosts"))
	path := filepath.Join(dir, "ssh_config")
	if err := os.WriteFile(path, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// The container publishes its ports on 127.0.0.1 only, carries the cleanup label, and its jump
// host refuses a client without the tool key (a real ssh with another key).
func TestContainerLoopbackAndJumpHostAuth(t *testing.T) {
	requireDocker(t)
	if _, err := exec.LookPath("ssh-keygen"); err != nil {
		t.Skip("ssh-keygen not installed")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	s, err := container.Start(ctx, container.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	e := s.Info()
	info, err := s.Container().Inspect(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if info.Config.Labels[container.Label] != "1" {
		t.Errorf("labels %v: want %s=1", info.Config.Labels, container.Label)
	}
	if len(info.NetworkSettings.Ports) != 2 {
		t.Errorf("published ports %v: want 8006/tcp and 2222/tcp", info.NetworkSettings.Ports)
	}
	for port, bindings := range info.NetworkSettings.Ports {
		for _, b := range bindings {
			if !b.HostIP.IsLoopback() {
				t.Errorf("port %v published on %v: want 127.0.0.1 only", port, b.HostIP)
			}
		}
	}
	dir := t.TempDir()
	other := filepath.Join(dir, "other")
	if out, err := exec.Command("ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", other).CombinedOutput(); err != nil {
		t.Fatalf("ssh-keygen: %v\n%s", err, out)
	}
	host, port, _ := strings.Cut(e.JumpAddr, ":")
	cmd := exec.CommandContext(ctx, "ssh", "-F", "/dev/null", "-o", "BatchMode=yes", "-o", "IdentitiesOnly=yes",
		"-o", "UserKnownHostsFile="+e.KnownHostsFile, "-o", "StrictHostKeyChecking=yes",
		"-i", other, "-p", port, "-N", "root@"+host)
	out, err := cmd.CombinedOutput()
	var exit *exec.ExitError
	if !errors.As(err, &exit) || exit.ExitCode() != 255 || !strings.Contains(string(out), "Permission denied (publickey)") {
		t.Fatalf("ssh with a foreign key: err=%v output=%q; want exit 255 and Permission denied (publickey)", err, out)
	}
}
