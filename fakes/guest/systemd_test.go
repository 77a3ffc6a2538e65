package guest

import (
	"context"
	"net/http"
	"strings"
	"testing"
	"time"
)

func TestSystemctlBehaviour(t *testing.T) {
	vm := newVM(t, 0, nil).ready()
	c := vm.client()
	cases := []struct {
		cmd            string
		code           int
		stdout, stderr string
	}{
		{cmd: "systemctl is-active nosuch", code: 3, stdout: "inactive\n"},
		{cmd: "sudo systemctl start nosuch", code: 5, stderr: "Failed to start nosuch.service: Unit nosuch.service not found."},
		{cmd: "systemctl is-enabled nosuch", code: 1, stderr: "Failed to get unit file state for nosuch.service: No such file or directory"},
		{cmd: "systemctl start qemu-guest-agent", code: 1, stderr: "Interactive authentication required."},
		{cmd: "systemctl is-active qemu-guest-agent; systemctl is-enabled qemu-guest-agent", stdout: "active\nstatic\n"},
		{cmd: "printf '[Service]\\nExecStart=/opt/missing/bin/app\\n[Install]\\nWantedBy=multi-user.target\\n' | sudo tee /etc/systemd/system/app.service >/dev/null && sudo systemctl daemon-reload && sudo systemctl start app; echo rc=$?", stdout: "rc=0\n"},
		{cmd: "systemctl is-active app", code: 3, stdout: "failed\n"},
		{cmd: "sudo journalctl -u app --no-pager | grep -c 'status=203/EXEC'", stdout: "1\n"},
		{cmd: "systemctl show -p ActiveState -p SubState -p MainPID app", stdout: "ActiveState=failed\nSubState=failed\nMainPID=0\n"},
		{cmd: "journalctl -u app | tail -1", stdout: "systemd[1]: app.service: Failed with result 'exit-code'.\n"}, // the cloud-init user is in adm
		{cmd: "cloud-init status --format json | grep extended_status", stdout: `"extended_status": "done",`},
	}
	for _, tc := range cases {
		r := vm.sh(c, tc.cmd)
		if r.code != tc.code || !strings.Contains(r.stdout, tc.stdout) || !strings.Contains(r.stderr, tc.stderr) {
			t.Errorf("%q: code %d\nstdout %q\nstderr %q\nwant code %d stdout ~%q stderr ~%q", tc.cmd, r.code, r.stdout, r.stderr, tc.code, tc.stdout, tc.stderr)
		}
	}
}

func TestProvisioningProbes(t *testing.T) {
	vm := newVM(t, 0, nil).ready()
	c := vm.client()
	boot1 := vm.must(c, "cat /proc/sys/kernel/random/boot_id")
	if len(boot1) != 37 {
		t.Errorf("boot_id %q", boot1)
	}
	if got := vm.must(c, `d=$(mktemp -d /tmp/aimachine-verify.XXXXXX) && test -d "$d" && echo "$d" | grep -c '^/tmp/aimachine-verify\.[A-Za-z0-9]\{6\}$'`); got != "1\n" {
		t.Errorf("mktemp template: %q", got)
	}
	if r := vm.sh(c, "dmesg 2>/dev/null || journalctl -k -b --no-pager -o short-monotonic | head -1"); r.code != 0 || !strings.Contains(r.stdout, "] vm-llm-aimachine kernel: Linux version 6.8.0-88-generic") {
		t.Errorf("kernel log as the user: %+v", r)
	}
	if got := vm.must(c, "printf 'header = \"X-Probe: yes\"\\n' | curl -s -K - http://127.0.0.1:9/ ; echo rc=$?"); got != "rc=7\n" {
		t.Errorf("curl -K: %q", got)
	}
	runErr(c, "sudo reboot") // the connection drops

	vm.ready()
	if boot2 := vm.must(vm.client(), "cat /proc/sys/kernel/random/boot_id"); boot2 == boot1 {
		t.Error("boot_id unchanged across reboot")
	}
}

// TestStopWaitsForTheMainProcess: `systemctl stop` (and the stop half of `restart`) returns
// once the main process is gone (systemd.kill(5): the stop job ends when the processes have
// exited, SIGKILL after TimeoutStopSec=), so the port it listened on is closed when systemctl
// returns. A daemon here takes a moment to close its socket after the signal.
func TestStopWaitsForTheMainProcess(t *testing.T) {
	daemons["test-slow-stop"] = func(ctx context.Context, s *system, sv *service, argv []string, env map[string]string, u *user) int {
		s.listen("0.0.0.0", 9009, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(200) }))
		<-ctx.Done()
		time.Sleep(200 * time.Millisecond) // closing down after SIGTERM
		s.unlisten("0.0.0.0", 9009)
		return 0
	}
	t.Cleanup(func() { delete(daemons, "test-slow-stop") })
	vm := newVM(t, 0, nil).ready()
	vm.g.fs.writeFile("/usr/local/bin/slow-stop", simBinary("test-slow-stop"), 0o755, owner{})
	c := vm.client()
	vm.must(c, "printf '[Service]\\nExecStart=/usr/local/bin/slow-stop\\n' | sudo tee /etc/systemd/system/slow-stop.service >/dev/null && sudo systemctl daemon-reload && sudo systemctl start slow-stop")
	vm.poll(c, "curl -sf http://127.0.0.1:9009/")
	// Right after the stop returned, the old socket is closed (curl: 7, connection refused).
	if r := vm.sh(c, "sudo systemctl stop slow-stop && curl -s -o /dev/null http://127.0.0.1:9009/; echo rc=$?"); !strings.Contains(r.stdout, "rc=7") {
		t.Errorf("the stopped process still answered: %q", r.stdout)
	}
}
