package guest

import (
	"io"
	"net"
	"os"
	"sync"
	"time"
)

// memPipe returns two connected in-memory net.Conns. Unlike net.Pipe, writes are buffered (an SSH
// handshake has both sides write their version line first), reads honour deadlines.
func memPipe(a, b net.Addr) (net.Conn, net.Conn) {
	ab := newMemBuf()
	ba := newMemBuf()
	return &memConn{r: ba, w: ab, local: a, remote: b}, &memConn{r: ab, w: ba, local: b, remote: a}
}

type memBuf struct {
	mu       sync.Mutex
	cond     *sync.Cond
	data     []byte
	closed   bool // writer closed: EOF after data
	broken   bool // reader closed
	deadline time.Time
	timer    *time.Timer
}

func newMemBuf() *memBuf {
	b := &memBuf{}
	b.cond = sync.NewCond(&b.mu)
	return b
}

func (b *memBuf) read(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	for len(b.data) == 0 {
		if b.broken {
			return 0, net.ErrClosed
		}
		if b.closed {
			return 0, io.EOF
		}
		if !b.deadline.IsZero() && !time.Now().Before(b.deadline) {
			return 0, os.ErrDeadlineExceeded
		}
		b.cond.Wait()
	}
	n := copy(p, b.data)
	b.data = b.data[n:]
	if len(b.data) == 0 {
		b.data = nil
	}
	return n, nil
}

func (b *memBuf) write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed || b.broken {
		return 0, io.ErrClosedPipe
	}
	b.data = append(b.data, p...)
	b.cond.Broadcast()
	return len(p), nil
}

func (b *memBuf) closeWrite() {
	b.mu.Lock()
	b.closed = true
	b.cond.Broadcast()
	b.mu.Unlock()
}

func (b *memBuf) closeRead() {
	b.mu.Lock()
	b.broken = true
	b.cond.Broadcast()
	b.mu.Unlock()
}

func (b *memBuf) setDeadline(t time.Time) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.deadline = t
	if b.timer != nil {
		b.timer.Stop()
		b.timer = nil
	}
	if !t.IsZero() {
		b.timer = time.AfterFunc(time.Until(t), func() {
			b.mu.Lock()
			b.cond.Broadcast()
			b.mu.Unlock()
		})
	}
	b.cond.Broadcast()
}

type memConn struct {
	r, w          *memBuf
	local, remote net.Addr
	once          sync.Once
}

func (c *memConn) Read(p []byte) (int, error)  { return c.r.read(p) }
func (c *memConn) Write(p []byte) (int, error) { return c.w.write(p) }
func (c *memConn) Close() error {
	c.once.Do(func() {
		c.w.closeWrite()
		c.r.closeRead()
	})
	return nil
}
func (c *memConn) LocalAddr() net.Addr                { return c.local }
func (c *memConn) RemoteAddr() net.Addr               { return c.remote }
func (c *memConn) SetDeadline(t time.Time) error      { c.r.setDeadline(t); return nil }
func (c *memConn) SetReadDeadline(t time.Time) error  { c.r.setDeadline(t); return nil }
func (c *memConn) SetWriteDeadline(t time.Time) error { return nil }
