package guest

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"strings"
	"sync"

	"golang.org/x/crypto/ssh"
)

// serverConfig builds the sshd configuration: public-key auth only, against the user's
// ~/.ssh/authorized_keys in the guest filesystem (written by cloud-init from the VM's sshkeys).
func (g *Guest) serverConfig() *ssh.ServerConfig {
	cfg := &ssh.ServerConfig{
		ServerVersion: "SSH-2.0-OpenSSH_9.6p1 Ubuntu-3ubuntu13.14",
		PublicKeyCallback: func(c ssh.ConnMetadata, key ssh.PublicKey) (*ssh.Permissions, error) {
			if g.authorized(c.User(), key) {
				return &ssh.Permissions{Extensions: map[string]string{"pubkey-fp": ssh.FingerprintSHA256(key)}}, nil
			}
			return nil, fmt.Errorf("key %s not authorized for %q", ssh.FingerprintSHA256(key), c.User())
		},
		MaxAuthTries:   6,
		BannerCallback: nil,
	}
	g.mu.Lock()
	for _, k := range g.hostKeys {
		cfg.AddHostKey(k)
	}
	g.mu.Unlock()
	return cfg
}

func (g *Guest) authorized(name string, key ssh.PublicKey) bool {
	if name == "root" {
		return false // cloud-init disables root login (disable_root)
	}
	u, err := g.fs.lookupUser(name)
	if err != nil {
		return false
	}
	data, err := g.fs.readFile(u.Home + "/.ssh/authorized_keys")
	if err != nil {
		return false
	}
	for len(data) > 0 {
		pk, _, opts, rest, err := ssh.ParseAuthorizedKey(data)
		if err != nil {
			break
		}
		data = rest
		if len(opts) == 0 && bytes.Equal(pk.Marshal(), key.Marshal()) {
			return true
		}
	}
	return false
}

func (g *Guest) serveSSH(c net.Conn) {
	defer g.untrack(c)
	defer c.Close()
	sconn, chans, reqs, err := ssh.NewServerConn(c, g.serverConfig())
	if err != nil {
		if strings.Contains(err.Error(), "no auth passed yet") || strings.Contains(err.Error(), "not authorized") {
			g.f.count(g.id.VMID, func(s *GuestStats) { s.AuthFailures++ })
		}
		g.f.log.Debug("ssh handshake failed", "vmid", g.id.VMID, "err", err)
		return
	}
	defer sconn.Close()
	g.f.count(g.id.VMID, func(s *GuestStats) { s.SSHConnections++ })
	g.f.log.Info("ssh login", "vmid", g.id.VMID, "user", sconn.User(), "key", sconn.Permissions.Extensions["pubkey-fp"])
	g.mu.Lock()
	ctx := g.bootCtx
	g.mu.Unlock()
	if ctx == nil {
		return
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	go func() {
		<-ctx.Done()
		c.Close()
	}()
	go func() {
		for r := range reqs {
			// OpenSSH's sshd answers unknown global requests (keepalive@openssh.com included)
			// with SSH_MSG_REQUEST_FAILURE: the reply itself is the keepalive.
			if r.WantReply {
				r.Reply(false, nil)
			}
		}
	}()
	u, err := g.fs.lookupUser(sconn.User())
	if err != nil {
		return
	}
	for nc := range chans {
		switch nc.ChannelType() {
		case "session":
			ch, creqs, err := nc.Accept()
			if err != nil {
				continue
			}
			g.f.count(g.id.VMID, func(s *GuestStats) { s.Sessions++ })
			go g.session(ctx, sconn, c, u, ch, creqs)
		case "direct-tcpip":
			g.directTCPIP(nc)
		default:
			nc.Reject(ssh.UnknownChannelType, "unknown channel type")
		}
	}
}

// directTCPIP forwards a channel to a service of this guest (ssh -L through the guest).
func (g *Guest) directTCPIP(nc ssh.NewChannel) {
	var req struct {
		Host     string
		Port     uint32
		OrigHost string
		OrigPort uint32
	}
	if err := ssh.Unmarshal(nc.ExtraData(), &req); err != nil {
		nc.Reject(ssh.ConnectionFailed, "bad request")
		return
	}
	host := req.Host
	if host == "localhost" {
		host = "127.0.0.1"
	}
	conn, errno := g.sys.dialService(host, int(req.Port))
	if errno != 0 {
		nc.Reject(ssh.ConnectionFailed, "Connection refused")
		return
	}
	ch, creqs, err := nc.Accept()
	if err != nil {
		conn.Close()
		return
	}
	go ssh.DiscardRequests(creqs)
	go func() {
		io.Copy(conn, ch)
		conn.Close()
	}()
	go func() {
		io.Copy(ch, conn)
		ch.CloseWrite()
		ch.Close()
	}()
}

type execReq struct{ Command string }
type envReq struct{ Name, Value string }
type exitStatus struct{ Status uint32 }

// session serves one session channel: env, pty-req, exec, shell, keepalive.
func (g *Guest) session(ctx context.Context, sconn *ssh.ServerConn, raw net.Conn, u *user, ch ssh.Channel, reqs <-chan *ssh.Request) {
	defer ch.Close()
	env := g.loginEnv(u)
	host, _, _ := net.SplitHostPort(raw.RemoteAddr().String())
	env["SSH_CONNECTION"] = fmt.Sprintf("%s %d %s 22", host, 40000+g.id.VMID%20000, g.IP())
	env["SSH_CLIENT"] = fmt.Sprintf("%s %d 22", host, 40000+g.id.VMID%20000)
	var once sync.Once
	for r := range reqs {
		switch r.Type {
		case "env":
			// Ubuntu's sshd_config has "AcceptEnv LANG LC_*"; session_env_req answers failure for any
			// other name (x/crypto's Session.Setenv then returns "ssh: setenv failed").
			var e envReq
			ok := ssh.Unmarshal(r.Payload, &e) == nil && (e.Name == "LANG" || strings.HasPrefix(e.Name, "LC_"))
			if ok {
				env[e.Name] = e.Value
			}
			if r.WantReply {
				r.Reply(ok, nil)
			}
		case "pty-req":
			env["TERM"] = "xterm"
			if r.WantReply {
				r.Reply(true, nil)
			}
		case "window-change", "signal":
			if r.WantReply {
				r.Reply(true, nil)
			}
		case "exec", "shell":
			cmd := ""
			if r.Type == "exec" {
				var e execReq
				if err := ssh.Unmarshal(r.Payload, &e); err != nil {
					r.Reply(false, nil)
					continue
				}
				cmd = e.Command
			}
			started := false
			once.Do(func() { started = true })
			if r.WantReply {
				r.Reply(started, nil)
			}
			if !started {
				continue
			}
			go func(cmd string, interactive bool) {
				code, dropped := g.runSSHCommand(ctx, u, env, cmd, interactive, ch, raw)
				if dropped {
					return
				}
				ch.SendRequest("exit-status", false, ssh.Marshal(exitStatus{uint32(code)}))
				ch.CloseWrite()
				ch.Close()
			}(cmd, r.Type == "shell")
		case "subsystem":
			r.Reply(false, nil)
		default:
			// keepalive@openssh.com and other unknown channel requests: failure reply, like sshd.
			if r.WantReply {
				r.Reply(false, nil)
			}
		}
	}
}

// runSSHCommand runs an exec (or a shell reading its script from stdin).
func (g *Guest) runSSHCommand(ctx context.Context, u *user, env map[string]string, cmd string, shell bool, ch ssh.Channel, raw net.Conn) (int, bool) {
	g.f.count(g.id.VMID, func(s *GuestStats) { s.Commands++ })
	g.f.log.Info("ssh exec", "vmid", g.id.VMID, "user", u.Name, "command", cmd)
	drop := g.f.fault(FaultSSHDrop, g.id.VMID, func(ft *Fault) bool { return ft.re == nil || ft.re.MatchString(cmd) })
	if drop != nil && drop.BeforeRun {
		raw.Close()
		return 0, true
	}
	var stdin io.Reader = ch
	if shell {
		b, _ := io.ReadAll(ch)
		cmd = string(b)
		stdin = strings.NewReader("")
	}
	code := g.runShell(ctx, shellSpec{user: u, env: env, dir: u.Home, script: cmd, stdin: stdin, stdout: ch, stderr: ch.Stderr()})
	if drop != nil {
		raw.Close()
		return code, true
	}
	if ctx.Err() != nil {
		return code, true
	}
	return code, false
}
