package guest

import (
	"context"
	"errors"
	"fmt"
	"net"
)

// Dialer opens TCP connections from the guest's side of the SSH connection (a direct-tcpip
// channel, what `ssh -L` uses): a service bound to the guest's loopback or private address is
// reached through the same route (and jump host) as the commands, and nothing dials the
// guest's network from here.
type Dialer interface {
	DialContext(ctx context.Context, network, addr string) (net.Conn, error)
}

// ErrNoForwarding is returned by DialVia for a Runner that cannot forward connections.
var ErrNoForwarding = errors.New("this connection cannot forward TCP connections")

// DialVia dials addr (host:port as the guest sees it) through r.
func DialVia(ctx context.Context, r Runner, addr string) (net.Conn, error) {
	d, ok := r.(Dialer)
	if !ok {
		return nil, ErrNoForwarding
	}
	return d.DialContext(ctx, "tcp", addr)
}

// DialContext implements Dialer: a direct-tcpip channel on the guest connection.
func (c *client) DialContext(ctx context.Context, network, addr string) (net.Conn, error) {
	conn, err := c.current()
	if err != nil {
		return nil, err
	}
	type result struct {
		c   net.Conn
		err error
	}
	ch := make(chan result, 1)
	go func() {
		nc, err := conn.Dial(network, addr)
		ch <- result{nc, err}
	}()
	select {
	case r := <-ch:
		if r.err != nil {
			return nil, fmt.Errorf("forward to %s through %s: %w", addr, c.cfg.Addr, r.err)
		}
		return r.c, nil
	case <-ctx.Done():
		go func() {
			if r := <-ch; r.c != nil {
				r.c.Close()
			}
		}()
		return nil, ctx.Err()
	}
}

// DialContext forwards to the wrapped Runner.
func (w *recording) DialContext(ctx context.Context, network, addr string) (net.Conn, error) {
	return DialVia(ctx, w.Runner, addr)
}

// CanForward reports whether r (or the Runner it wraps) can open forwarded connections.
func CanForward(r Runner) bool {
	for {
		switch v := r.(type) {
		case *recording:
			r = v.Runner
		case *client:
			return true
		default:
			_, ok := r.(Dialer)
			return ok
		}
	}
}
