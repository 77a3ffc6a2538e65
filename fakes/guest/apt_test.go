package guest

import (
	"strings"
	"testing"

	"github.com/aimachine/aimachine/fakes/pve"
)

func TestAptBehaviour(t *testing.T) {
	vm := newVM(t, 0, func(b *pve.BootInfo) { b.CloudInit.VendorData = "" }).ready()
	c := vm.client()
	cases := []struct {
		cmd            string
		code           int
		stdout, stderr string
	}{
		{cmd: "apt-get install -y jq", code: 100, stderr: "are you root?"},
		{cmd: "sudo apt-get install -y jq", code: 100, stderr: "E: Unable to locate package jq"}, // no lists on a fresh image
		{cmd: "sudo apt-get update", stdout: "Get:1 http://archive.ubuntu.com/ubuntu noble InRelease"},
		{cmd: "sudo apt-get install -y curl", stdout: "curl is already the newest version (8.5.0-2ubuntu10.6).\n0 upgraded, 0 newly installed"},
		{cmd: "sudo apt-get install build-essential", code: 1, stdout: "Do you want to continue? [Y/n] Abort.\n"},
		{cmd: "apt-cache policy nvidia-utils-580", stdout: "nvidia-utils-580:\n  Installed: (none)\n  Candidate: 580.173.02-0ubuntu0.24.04.1\n"},
		{cmd: "sudo apt install -y jq", stderr: "WARNING: apt does not have a stable CLI interface. Use with caution in scripts."},
		{cmd: "echo '{\"data\":[{\"id\":\"m1\"}]}' | jq -r '.data[0].id'", stdout: "m1\n"},
		{cmd: "dpkg -s nosuchpkg", code: 1, stderr: "dpkg-query: package 'nosuchpkg' is not installed and no information is available"},
		{cmd: "sudo apt-get install -y nvidia-cuda-toolkit && nvcc --version | grep release", stdout: "Cuda compilation tools, release 12.0, V12.0.140\n"},
		{cmd: "pip3 --version", code: 127},
		{cmd: "sudo apt-get install -y python3-pip && pip install requests", code: 1, stderr: "error: externally-managed-environment"},
	}
	for _, tc := range cases {
		r := vm.sh(c, tc.cmd)
		if r.code != tc.code || !strings.Contains(r.stdout, tc.stdout) || !strings.Contains(r.stderr, tc.stderr) {
			t.Errorf("%q: code %d\nstdout %q\nstderr %q\nwant code %d stdout ~%q stderr ~%q", tc.cmd, r.code, r.stdout, r.stderr, tc.code, tc.stdout, tc.stderr)
		}
	}
}
