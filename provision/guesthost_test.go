package provision

import (
	"reflect"
	"strings"
	"testing"

	"github.com/aimachine/aimachine/catalog"
	"github.com/aimachine/aimachine/provision/guest"
)

// GuestConfig is the one SSH builder: deploy (Client.SSHConfig), deploy --host and verify
// reach the same guest the same way.
func TestGuestConfig(t *testing.T) {
	cat, err := catalog.LoadValid("testdata/catalog.yml")
	if err != nil {
		t.Fatal(err)
	}
	cat.JumpHost = &catalog.JumpHost{Address: "127.0.0.1:2222", User: "root"}
	vm, err := cat.VM(vm140)
	if err != nil {
		t.Fatal(err)
	}
	yes := true
	tests := []struct {
		name    string
		o       HostOptions
		want    guest.Config
		wantErr string
	}{
		{name: "catalog address, user and jump host",
			o:    HostOptions{KeyFile: "id", KnownHostsFile: "kh", LoopbackOnly: &yes},
			want: guest.Config{Addr: "192.168.0.140:22", User: "ubuntu", KeyFile: "id", KnownHostsFile: "kh", LoopbackOnly: true, Jump: &guest.Jump{Addr: "127.0.0.1:2222", User: "root", KeyFile: "id"}}},
		{name: "jump option overrides the catalog's",
			o:    HostOptions{KeyFile: "id", KnownHostsFile: "kh", Jump: "admin@127.0.0.1"},
			want: guest.Config{Addr: "192.168.0.140:22", User: "ubuntu", KeyFile: "id", KnownHostsFile: "kh", Jump: &guest.Jump{Addr: "127.0.0.1:22", User: "admin", KeyFile: "id"}}},
		{name: "target: its user and port, no catalog jump host",
			o:    HostOptions{Target: "me@127.0.0.1:2200", KnownHostsFile: "kh", AcceptNewHostKey: true},
			want: guest.Config{Addr: "127.0.0.1:2200", User: "me", KnownHostsFile: "kh", AcceptNewHostKey: true}},
		{name: "bad target", o: HostOptions{Target: "127.0.0.1"}, wantErr: "not USER@ADDR"},
		{name: "bad jump", o: HostOptions{Jump: "me@127.0.0.1:x"}, wantErr: "jump host"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Setenv(EnvSimulator, "")
			got, err := GuestConfig(cat, vm, tt.o)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err = %v, want %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Fatalf("config\n got %+v (jump %+v)\nwant %+v (jump %+v)", got, got.Jump, tt.want, tt.want.Jump)
			}
		})
	}

	// Deploy's builder is the same one, loopback-only in simulator mode.
	c := &Client{simulator: true}
	got, err := c.SSHConfig(cat, vm140, SSHOptions{KeyFile: "id", KnownHostsFile: "kh"})
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, tests[0].want) {
		t.Fatalf("SSHConfig = %+v, want %+v", got, tests[0].want)
	}
}
