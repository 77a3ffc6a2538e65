package guest

import (
	"bytes"
	"context"
	"errors"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"
)

func TestDialErrors(t *testing.T) {
	f := NewFactory(WithTimeScale(0))
	defer f.Close()
	_, err := f.DialGuest(context.Background(), "192.168.0.140:22")
	if err == nil || !errors.Is(err, syscall.EHOSTUNREACH) || err.Error() != "dial tcp 192.168.0.140:22: connect: no route to host" {
		t.Fatalf("no guest: %v", err)
	}
	vm := newVM(t, 0, nil).ready()
	if _, err := vm.f.DialGuest(context.Background(), "192.168.0.140:8000"); !errors.Is(err, syscall.ECONNREFUSED) {
		t.Errorf("closed port: %v", err)
	}
	vm.g.PowerOff(false)
	if _, err := vm.f.DialGuest(context.Background(), "192.168.0.140:22"); !errors.Is(err, syscall.EHOSTUNREACH) {
		t.Errorf("powered off: %v", err)
	}
}

func TestAuthOnlyCloudInitKeys(t *testing.T) {
	vm := newVM(t, 0, nil).ready()
	other, _ := ssh.NewSignerFromKey(mustEd25519())
	if _, err := vm.dial("ubuntu", other); err == nil || !strings.Contains(err.Error(), "unable to authenticate") {
		t.Errorf("foreign key: %v", err)
	}
	if _, err := vm.dial("root", vm.signer); err == nil {
		t.Error("root login accepted")
	}
	if _, err := vm.dial("ubuntu", vm.signer); err != nil {
		t.Errorf("cloud-init key rejected: %v", err)
	}
	st := vm.f.Stats()
	for i := 0; i < 200 && (st.AuthFailures < 2 || st.SSHConnections < 1); i++ { // the server counts after the client moved on
		time.Sleep(5 * time.Millisecond)
		st = vm.f.Stats()
	}
	if st.AuthFailures < 2 || st.SSHConnections != 1 || st.Guests[140].SSHConnections != 1 {
		t.Errorf("stats: %+v", st)
	}
}

func TestRebootDropsConnectionsKeepsHostKey(t *testing.T) {
	vm := newVM(t, 0.05, nil).ready() // boot = 1 s
	c := vm.client()
	key := vm.g.HostKeys()[0].Marshal()
	ok, _, err := c.SendRequest("keepalive@openssh.com", true, nil)
	if err != nil || ok {
		t.Errorf("keepalive: ok=%v err=%v (sshd answers with a failure reply)", ok, err)
	}
	done := make(chan error, 1)
	go func() { done <- runErr(c, "sleep 600") }()
	time.Sleep(20 * time.Millisecond)
	if err := vm.g.Reboot(); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-done:
		var missing *ssh.ExitMissingError
		if err == nil || !(errors.As(err, &missing) || strings.Contains(err.Error(), "EOF")) {
			t.Errorf("running command after reboot: %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("command survived the reboot")
	}
	if _, err := vm.f.DialGuest(context.Background(), "192.168.0.140:22"); !errors.Is(err, syscall.EHOSTUNREACH) {
		t.Errorf("early boot: %v", err)
	}
	deadline := time.Now().Add(5 * time.Second)
	sawRefused := false
	for time.Now().Before(deadline) {
		conn, err := vm.f.DialGuest(context.Background(), "192.168.0.140:22")
		if err == nil {
			conn.Close()
			break
		}
		if errors.Is(err, syscall.ECONNREFUSED) {
			sawRefused = true
		}
		time.Sleep(5 * time.Millisecond)
	}
	if !sawRefused {
		t.Error("never saw connection refused between network up and sshd up")
	}
	vm.ready()
	c2 := vm.client()
	if !bytes.Equal(vm.g.HostKeys()[0].Marshal(), key) {
		t.Error("host key changed across reboot")
	}
	if got := vm.must(c2, "cat /etc/ssh/ssh_host_ed25519_key.pub"); !strings.HasPrefix(got, strings.TrimSpace(string(ssh.MarshalAuthorizedKey(vm.g.HostKeys()[0])))) {
		t.Errorf("host key file %q does not match the served key", got)
	}
	if st := vm.f.Stats(); st.Guests[140].Boots != 2 {
		t.Errorf("boots: %+v", st.Guests[140])
	}
}

func TestRecreatedVMHasNewHostKey(t *testing.T) {
	a := newVM(t, 0, nil).ready()
	b := newVM(t, 0, nil).ready()
	if bytes.Equal(a.g.HostKeys()[0].Marshal(), b.g.HostKeys()[0].Marshal()) {
		t.Error("two incarnations share a host key")
	}
}
