package toxic

import (
	"bufio"
	"io"
	"net"
	"strings"
	"testing"
	"time"
)

// echo is a loopback line echo server.
func echo(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() { defer c.Close(); io.Copy(c, c) }()
		}
	}()
	return ln.Addr().String()
}

func roundTrip(addr, msg string, timeout time.Duration) (string, error) {
	c, err := net.DialTimeout("tcp", addr, timeout)
	if err != nil {
		return "", err
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(timeout))
	if _, err := io.WriteString(c, msg+"\n"); err != nil {
		return "", err
	}
	return bufio.NewReader(c).ReadString('\n')
}

func TestProxyForwardsAndInjectsFaults(t *testing.T) {
	p, err := Start("echo", echo(t))
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	if got, err := roundTrip(p.Addr, "hello", 2*time.Second); err != nil || got != "hello\n" {
		t.Fatalf("healthy: %q %v", got, err)
	}
	if err := p.Add(Stall(0)); err != nil {
		t.Fatal(err)
	}
	if _, err := roundTrip(p.Addr, "stalled", 300*time.Millisecond); err == nil {
		t.Fatal("a stalled link answered")
	}
	p.Clear()
	if err := p.Add(CutAfter(4)); err != nil {
		t.Fatal(err)
	}
	if got, _ := roundTrip(p.Addr, "truncated", 2*time.Second); strings.HasSuffix(got, "\n") {
		t.Fatalf("cut link delivered the whole line: %q", got)
	}
	p.Clear()
	if err := p.Add(ResetPeer(0)); err != nil {
		t.Fatal(err)
	}
	if _, err := roundTrip(p.Addr, "reset", 2*time.Second); err == nil {
		t.Fatal("reset link answered")
	}
	p.Clear()
	if got, err := roundTrip(p.Addr, "again", 2*time.Second); err != nil || got != "again\n" {
		t.Fatalf("after Clear: %q %v", got, err)
	}
	if _, err := Start("far", "192.168.0.140:22"); err == nil {
		t.Fatal("a non-loopback upstream was accepted")
	}
}
