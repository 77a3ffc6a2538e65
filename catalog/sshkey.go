package catalog

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"golang.org/x/crypto/ssh"
)

// Resolve returns the public key as one authorized_keys line ("ssh-ed25519 AAAA… comment"):
// Key itself, or the one key in File. File is ~ expanded and, when relative, read from the
// catalog file's directory. The line must parse (ssh.ParseAuthorizedKey); a file holding a
// private key is refused without quoting it.
func (k *SSHKey) Resolve() (string, error) {
	switch {
	case k.Key != "" && k.File != "":
		return "", errors.New("set key or file, not both")
	case k.Key != "":
		return parseOneKey(k.Key, "key "+abbreviate(k.Key), "the key")
	case k.File != "":
		data, err := readKeyFile(k.Path(), keyFileTimeout)
		if err != nil {
			return "", err
		}
		what := fmt.Sprintf("file %q", k.File)
		return parseOneKey(string(data), what, what)
	}
	return "", errors.New("set key (a public key, e.g. \"ssh-ed25519 AAAA… me@host\") or file (a .pub file)")
}

// Limits on reading ssh_keys[].file: a public key is one line of at most a few KB.
const (
	// MaxKeyFileBytes is the largest public key file read.
	MaxKeyFileBytes = 64 << 10
	// KeyFileTimeout bounds the read of a key file (a hung network mount).
	KeyFileTimeout = 5 * time.Second
)

// keyFileTimeout is KeyFileTimeout and readAll is io.ReadAll; tests replace them (a read
// that never returns).
var (
	keyFileTimeout = KeyFileTimeout
	readAll        = io.ReadAll
)

// readKeyFile reads a public key file: a regular file only (a device such as /dev/zero,
// a FIFO or a socket is refused at once, without reading), at most MaxKeyFileBytes, within
// timeout. The open does not block (O_NONBLOCK where the system has it), so a FIFO without a
// writer cannot hang it, and the type is checked on the opened file, not on a name that
// could change in between.
func readKeyFile(path string, timeout time.Duration) ([]byte, error) {
	const hint = "(hint: create it with ssh-keygen -t ed25519, or give the key literally under key:)"
	f, err := os.OpenFile(path, keyFileOpenFlags, 0)
	if err != nil {
		return nil, fmt.Errorf("read public key file: %w %s", err, hint)
	}
	fi, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("read public key file: %w", err)
	}
	if !fi.Mode().IsRegular() {
		f.Close()
		return nil, fmt.Errorf("public key file %s is %s, not a regular file: give the path of a .pub file", path, describeMode(fi.Mode()))
	}
	if fi.Size() > MaxKeyFileBytes {
		f.Close()
		return nil, fmt.Errorf("public key file %s is %d bytes, more than %d: a public key is one line (is it the right file?)", path, fi.Size(), MaxKeyFileBytes)
	}
	type result struct {
		data []byte
		err  error
	}
	done := make(chan result, 1)
	go func() {
		defer f.Close()
		data, err := readAll(io.LimitReader(f, MaxKeyFileBytes+1))
		done <- result{data, err}
	}()
	timer := time.NewTimer(timeout)
	defer timer.Stop()
	select {
	case r := <-done:
		switch {
		case r.err != nil:
			return nil, fmt.Errorf("read public key file: %w", r.err)
		case len(r.data) > MaxKeyFileBytes:
			return nil, fmt.Errorf("public key file %s grew past %d bytes while being read", path, MaxKeyFileBytes)
		}
		return r.data, nil
	case <-timer.C:
		// The reading goroutine ends (and closes the file) whenever the read returns.
		return nil, fmt.Errorf("public key file %s: no answer after %s (a hung network mount?)", path, timeout)
	}
}

func describeMode(m os.FileMode) string {
	switch {
	case m.IsDir():
		return "a directory"
	case m&os.ModeNamedPipe != 0:
		return "a FIFO (named pipe)"
	case m&os.ModeSocket != 0:
		return "a socket"
	case m&os.ModeCharDevice != 0:
		return "a character device"
	case m&os.ModeDevice != 0:
		return "a block device"
	}
	return "not a regular file (" + m.Type().String() + ")"
}

// Path is File with ~ expanded and made relative to the catalog's directory ("" without File).
func (k *SSHKey) Path() string {
	if k.File == "" {
		return ""
	}
	p := expandHome(k.File)
	if !filepath.IsAbs(p) && k.dir != "" {
		p = filepath.Join(k.dir, p)
	}
	return p
}

// PublicKeys resolves every cloud-init SSH key of the VM, in catalog order.
func (vm *VM) PublicKeys() ([]string, error) {
	keys := make([]string, 0, len(vm.CloudInit.SSHKeys))
	for i := range vm.CloudInit.SSHKeys {
		k, err := vm.CloudInit.SSHKeys[i].Resolve()
		if err != nil {
			return nil, fmt.Errorf("VM %q cloud_init.ssh_keys[%d]: %w", vm.Name, i, err)
		}
		keys = append(keys, k)
	}
	return keys, nil
}

// parseOneKey checks text holds exactly one authorized_keys line and returns it trimmed.
// what names the key in errors; safe names it without quoting any of it (for private keys).
func parseOneKey(text, what, safe string) (string, error) {
	if strings.Contains(text, "PRIVATE KEY") {
		return "", fmt.Errorf("%s holds a private key: give the public key (the .pub file); a private key must never be in the catalog", safe)
	}
	var lines []string
	for _, l := range strings.Split(text, "\n") {
		l = strings.TrimSpace(l)
		if l != "" && !strings.HasPrefix(l, "#") {
			lines = append(lines, l)
		}
	}
	switch len(lines) {
	case 0:
		return "", fmt.Errorf("%s holds no public key", what)
	case 1:
	default:
		return "", fmt.Errorf("%s holds %d keys: list each as its own ssh_keys entry", what, len(lines))
	}
	if _, _, _, _, err := ssh.ParseAuthorizedKey([]byte(lines[0])); err != nil {
		return "", fmt.Errorf("%s does not parse as an authorized_keys line (%v); want \"TYPE BASE64 [COMMENT]\", e.g. the content of ~/.ssh/id_ed25519.pub", what, err)
	}
	return lines[0], nil
}

// abbreviate quotes the start of a literal key: enough to recognise it in an error.
func abbreviate(s string) string {
	s = strings.TrimSpace(s)
	r := []rune(s)
	if len(r) > 24 {
		return fmt.Sprintf("%q…", string(r[:24]))
	}
	return fmt.Sprintf("%q", s)
}

func expandHome(p string) string {
	if p != "~" && !strings.HasPrefix(p, "~/") {
		return p
	}
	home, err := os.UserHomeDir()
	if err != nil {
		return p
	}
	return filepath.Join(home, strings.TrimPrefix(p, "~"))
}
