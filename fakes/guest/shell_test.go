package guest

import (
	"strings"
	"testing"
)

func TestShellOverSSH(t *testing.T) {
	vm := newVM(t, 0, nil).ready()
	c := vm.client()
	cases := []struct {
		cmd    string
		code   int
		stdout string // substring expected in stdout
		stderr string // substring expected in stderr
	}{
		{cmd: "whoami", stdout: "ubuntu\n"},
		{cmd: "sudo whoami", stdout: "root\n"},
		{cmd: "id", stdout: "uid=1000(ubuntu) gid=1000(ubuntu) groups=1000(ubuntu),4(adm),27(sudo)"},
		{cmd: "sudo id -u", stdout: "0\n"},
		{cmd: "echo $HOME $USER", stdout: "/home/ubuntu ubuntu\n"},
		{cmd: "pwd", stdout: "/home/ubuntu\n"},
		{cmd: "hostname", stdout: "vm-llm-aimachine\n"},
		{cmd: "uname -r", stdout: "6.8.0-88-generic\n"},
		{cmd: ". /etc/os-release && echo $VERSION_ID $VERSION_CODENAME", stdout: "24.04 noble\n"},
		{cmd: "echo hi > /etc/aimachine.conf", code: 1, stderr: "/etc/aimachine.conf: Permission denied"},
		{cmd: "echo 'a=1' | sudo tee /etc/aimachine.conf >/dev/null && cat /etc/aimachine.conf", stdout: "a=1\n"},
		{cmd: "sudo sed -i 's/a=1/a=2/' /etc/aimachine.conf && grep -c 'a=2' /etc/aimachine.conf", stdout: "1\n"},
		{cmd: "sudo sh -c 'cat > /etc/x.conf <<EOF\nline one\nline two\nEOF' && wc -l < /etc/x.conf", stdout: "2\n"},
		{cmd: "cat /etc/x.conf | awk '{print $2}'", stdout: "one\ntwo\n"},
		{cmd: "test -f /etc/x.conf && echo yes || echo no", stdout: "yes\n"},
		{cmd: "test -f /etc/nope && echo yes || echo no", stdout: "no\n"},
		{cmd: "mkdir -p /opt/vllm", code: 1, stderr: "Permission denied"},
		{cmd: "sudo mkdir -p /opt/vllm/models && sudo chown -R ubuntu:ubuntu /opt/vllm && touch /opt/vllm/models/x && stat -c '%U:%G' /opt/vllm/models/x", stdout: "ubuntu:ubuntu\n"},
		{cmd: "sudo install -d -m 0750 -o root /srv/secret && stat -c '%a %U' /srv/secret", stdout: "750 root\n"},
		{cmd: "ln -s /etc/x.conf ~/link && readlink ~/link && cat ~/link | head -1", stdout: "/etc/x.conf\nline one\n"},
		{cmd: "chmod 600 ~/link && stat -c %a /etc/x.conf", code: 1},
		{cmd: "ls /etc/sudoers.d", stdout: "90-cloud-init-users\n"},
		{cmd: "cat /etc/sudoers.d/90-cloud-init-users", code: 1, stderr: "Permission denied"},
		{cmd: "nosuchcommand", code: 127, stderr: "nosuchcommand: command not found"},
		{cmd: "false; echo $?", stdout: "1\n"},
		{cmd: "printf '%s-%s\\n' a b | tr a-z A-Z", stdout: "A-B\n"},
		{cmd: "for i in 1 2 3; do echo $i; done | sort -r | head -n 1", stdout: "3\n"},
		{cmd: "command -v apt-get && command -v nvidia-smi; echo $?", stdout: "/usr/bin/apt-get\n1\n"},
		{cmd: "ls /etc/ssh/ssh_host_ed25519_key.pub", stdout: "/etc/ssh/ssh_host_ed25519_key.pub\n"},
		{cmd: "cat /proc/cpuinfo | grep -m1 -o avx2", stdout: "avx2\n"},
		{cmd: "exit 3", code: 3},
		{cmd: "DEBIAN_FRONTEND=noninteractive env | grep DEBIAN", stdout: "DEBIAN_FRONTEND=noninteractive\n"},
		{cmd: "sudo DEBIAN_FRONTEND=noninteractive env | grep -c DEBIAN", stdout: "1\n"},
	}
	for _, tc := range cases {
		r := vm.sh(c, tc.cmd)
		if r.code != tc.code || !strings.Contains(r.stdout, tc.stdout) || !strings.Contains(r.stderr, tc.stderr) {
			t.Errorf("%q: code %d stdout %q stderr %q; want code %d stdout ~%q stderr ~%q", tc.cmd, r.code, r.stdout, r.stderr, tc.code, tc.stdout, tc.stderr)
		}
	}
	// stdin reaches the command
	r := runOn(t, c, "cat > ~/in.txt && cat ~/in.txt", "from stdin\n")
	if r.stdout != "from stdin\n" {
		t.Errorf("stdin: got %q", r.stdout)
	}
	// env: LANG / LC_* accepted, anything else refused like sshd (AcceptEnv LANG LC_*)
	sess, _ := c.NewSession()
	if err := sess.Setenv("LC_TEST", "x"); err != nil {
		t.Errorf("Setenv LC_TEST: %v", err)
	}
	if err := sess.Setenv("DEBIAN_FRONTEND", "noninteractive"); err == nil {
		t.Error("Setenv DEBIAN_FRONTEND accepted; Ubuntu's sshd refuses it")
	}
	if out, _ := sess.Output("echo $LC_TEST ${DEBIAN_FRONTEND:-unset}"); string(out) != "x unset\n" {
		t.Errorf("env applied: %q", out)
	}
	// the host's /etc was not touched
	if _, err := vm.g.fs.stat("/etc/aimachine.conf", true); err != nil {
		t.Errorf("file not in guest fs: %v", err)
	}
}
