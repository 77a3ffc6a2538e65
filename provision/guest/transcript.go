package guest

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"fmt"
	"io/fs"
	"strings"
	"sync"
	"time"

	"golang.org/x/crypto/ssh"
)

// Redacted replaces secrets in transcripts and errors.
const Redacted = "[REDACTED]"

type recorder struct {
	mu      sync.Mutex
	hook    func(Entry)
	secrets []string
}

func (r *recorder) redact(s string) string {
	return RedactAll(s, r.secrets)
}

// RedactAll replaces every non-empty secret in s.
func RedactAll(s string, secrets []string) string {
	for _, sec := range secrets {
		if len(sec) >= 4 {
			s = strings.ReplaceAll(s, sec, Redacted)
		}
	}
	return s
}

func (r *recorder) record(cmd string, res Result, d time.Duration, err error) {
	if r.hook == nil {
		return
	}
	e := Entry{
		Time:     time.Now().Add(-d),
		Cmd:      r.redact(cmd),
		ExitCode: res.ExitCode,
		Stdout:   r.redact(Tail(res.Stdout, 40)),
		Stderr:   r.redact(Tail(res.Stderr, 40)),
		Duration: d,
	}
	if err != nil {
		if _, ok := err.(*ExitError); !ok {
			e.Err = r.redact(err.Error())
		}
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	r.hook(e)
}

// WithTranscript wraps r so that every command (and Put, without its data) is passed to hook
// with secrets redacted. Errors coming back are redacted as well.
func WithTranscript(r Runner, hook func(Entry), secrets ...string) Runner {
	return &recording{Runner: r, rec: recorder{hook: hook, secrets: secrets}}
}

type recording struct {
	Runner
	rec recorder
}

func (w *recording) Run(ctx context.Context, cmd string) (Result, error) {
	start := time.Now()
	res, err := w.Runner.Run(ctx, cmd)
	w.rec.record(cmd, res, time.Since(start), err)
	return res, w.redactErr(err)
}

func (w *recording) Put(ctx context.Context, path string, mode fs.FileMode, data []byte) error {
	start := time.Now()
	err := w.Runner.Put(ctx, path, mode, data)
	res := Result{ExitCode: 0}
	if err != nil {
		res.ExitCode = -1
	}
	w.rec.record(fmt.Sprintf("put %s (mode %04o, %d bytes)", path, mode.Perm(), len(data)), res, time.Since(start), err)
	return w.redactErr(err)
}

func (w *recording) redactErr(err error) error {
	if err == nil {
		return nil
	}
	if ee, ok := err.(*ExitError); ok {
		return &ExitError{Cmd: w.rec.redact(ee.Cmd), Code: ee.Code, StderrTail: w.rec.redact(ee.StderrTail)}
	}
	msg := err.Error()
	if red := w.rec.redact(msg); red != msg {
		return &redactedError{msg: red, err: err}
	}
	return err
}

type redactedError struct {
	msg string
	err error
}

func (e *redactedError) Error() string { return e.msg }
func (e *redactedError) Unwrap() error { return e.err }

// ed25519Key makes a throwaway key used only to ask knownhosts which key types are pinned.
func ed25519Key() (ed25519.PrivateKey, ssh.PublicKey, error) {
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return nil, nil, err
	}
	sp, err := ssh.NewPublicKey(pub)
	return priv, sp, err
}
