package steps

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"time"

	"github.com/cucumber/godog"

	"github.com/aimachine/aimachine/catalog"
	"github.com/aimachine/aimachine/provision"
)

// hostile is the state of the hostile-input scenarios (features/hostile_input.feature).
type hostile struct {
	path   string
	tmp    string // a directory this scenario made
	err    error
	ln     net.Listener
	conns  atomic.Int64
	bytes  atomic.Int64
	secret string
}

func (w *World) registerHostileSteps(sc *godog.ScenarioContext) {
	h := &hostile{}
	sc.After(func(ctx context.Context, _ *godog.Scenario, _ error) (context.Context, error) {
		if h.ln != nil {
			h.ln.Close()
		}
		if h.tmp != "" {
			os.RemoveAll(h.tmp)
		}
		return ctx, nil
	})
	sc.Given(`^the catalog file "([^"]*)" of at most (\d+) bytes$`, h.catalogFile)
	sc.Given(`^a catalog whose SSH key file is "([^"]*)"$`, h.catalogWithKeyFile)
	sc.When(`^the administrator validates that catalog$`, h.validate)
	sc.Then(`^validation fails at line (\d+) column (\d+) saying "([^"]*)"$`, h.failsAt)
	sc.Then(`^validation fails saying "([^"]*)"$`, h.failsSaying)
	sc.Then(`^the refusal says "([^"]*)"$`, h.errorSays)
	sc.Given(`^a listener on loopback that counts connections and bytes$`, h.listen)
	sc.When(`^the administrator connects to it over "([^"]*)" with an API token$`, h.connect)
	sc.Then(`^the connection is refused saying "([^"]*)"$`, h.failsSaying)
	sc.Then(`^the error does not contain the token secret$`, h.noSecret)
	sc.Then(`^the listener received no connection and no bytes$`, h.receivedNothing)
}

func (h *hostile) catalogFile(path string, max int) error {
	fi, err := os.Stat(path)
	if err != nil {
		return err
	}
	if fi.Size() > int64(max) {
		return fmt.Errorf("%s is %d bytes, more than %d", path, fi.Size(), max)
	}
	h.path = path
	return nil
}

func (h *hostile) catalogWithKeyFile(keyFile string) error {
	dir, err := os.MkdirTemp("", "aimachine-hostile-")
	if err != nil {
		return err
	}
	h.tmp = dir
	h.path = filepath.Join(dir, "catalog.yml")
	return os.WriteFile(h.path, []byte(`version: 1
network: {subnet: 192.168.0.0/24, gateway: 192.168.0.1}
nodes: [{name: pve, storages: [local, local-lvm]}]
vms:
  - {id: 120, name: vm-a, node: pve, cores: 1, memory_mb: 512, disk: {size_gb: 8, storage: local-lvm},
     image: {vendor_data: "local:snippets/v.yaml"}, cloud_init: {user: ubuntu, ssh_keys: [{file: `+keyFile+`}]}}
`), 0o600)
}

// validate is what `aimachine catalog validate` does.
func (h *hostile) validate() error {
	_, h.err = catalog.LoadValid(h.path)
	return nil
}

func (h *hostile) failsAt(line, col int, msg string) error {
	if h.err == nil {
		return errors.New("the catalog was accepted")
	}
	prefix := fmt.Sprintf("%s:%d:%d: ", h.path, line, col)
	for _, l := range strings.Split(h.err.Error(), "\n") {
		if strings.HasPrefix(l, prefix) && strings.Contains(l, msg) {
			return nil
		}
	}
	return fmt.Errorf("no error %q…%q among:\n%v", prefix, msg, h.err)
}

func (h *hostile) failsSaying(msg string) error {
	if h.err == nil {
		return errors.New("it was accepted")
	}
	if !strings.Contains(h.err.Error(), msg) {
		return fmt.Errorf("the error does not say %q:\n%v", msg, h.err)
	}
	return nil
}

func (h *hostile) errorSays(msg string) error { return h.failsSaying(msg) }

func (h *hostile) listen() error {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	h.ln = ln
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			h.conns.Add(1)
			go func() {
				defer c.Close()
				buf := make([]byte, 4096)
				for {
					_ = c.SetReadDeadline(time.Now().Add(time.Second))
					n, err := c.Read(buf)
					h.bytes.Add(int64(n))
					if err != nil {
						return
					}
				}
			}()
		}
	}()
	return nil
}

func (h *hostile) connect(scheme string) error {
	h.secret = "hostile-token-secret-5150"
	_, h.err = provision.Connect(context.Background(), provision.ConnOptions{
		Endpoint: scheme + "://" + h.ln.Addr().String() + "/",
		APIToken: "root@pam!aimachine=" + h.secret,
		Timeout:  2 * time.Second,
	})
	return nil
}

func (h *hostile) noSecret() error {
	if h.err != nil && strings.Contains(h.err.Error(), h.secret) {
		return fmt.Errorf("the error quotes the token secret: %v", h.err)
	}
	return nil
}

// receivedNothing closes the listener after accepting what the kernel queued, so that a
// connection made before the refusal is counted.
func (h *hostile) receivedNothing() error {
	tl := h.ln.(*net.TCPListener)
	for {
		_ = tl.SetDeadline(time.Now().Add(200 * time.Millisecond))
		c, err := tl.Accept()
		if err != nil {
			break
		}
		h.conns.Add(1)
		c.Close()
	}
	if n, b := h.conns.Load(), h.bytes.Load(); n != 0 || b != 0 {
		return fmt.Errorf("the endpoint received %d connections and %d bytes", n, b)
	}
	return nil
}
