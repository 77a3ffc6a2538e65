package provision

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"

	"golang.org/x/crypto/ssh"
	"golang.org/x/crypto/ssh/knownhosts"
)

// ErrHostKeyMismatch is a guest whose host key differs from the pinned one.
var ErrHostKeyMismatch = errors.New("SSH host key differs from the pinned key")

// DefaultKnownHostsFile is ~/.config/aimachine/known_hosts.
func DefaultKnownHostsFile() string {
	if dir, err := os.UserConfigDir(); err == nil {
		return filepath.Join(dir, "aimachine", "known_hosts")
	}
	home, _ := os.UserHomeDir()
	return filepath.Join(home, ".config", "aimachine", "known_hosts")
}

// hostKeyStatus says what known_hosts holds for addr and key type.
type hostKeyStatus int

const (
	hostKeyUnknown hostKeyStatus = iota
	hostKeyPinned                // the same key is pinned
	hostKeyDiffers               // another key of that type is pinned
)

// checkPinned compares key with what file pins for addr ("192.168.0.140:22").
func checkPinned(file, addr string, key ssh.PublicKey) (hostKeyStatus, error) {
	if _, err := os.Stat(file); errors.Is(err, os.ErrNotExist) {
		return hostKeyUnknown, nil
	}
	cb, err := knownhosts.New(file)
	if err != nil {
		return hostKeyUnknown, fmt.Errorf("read known_hosts %s: %w", file, err)
	}
	remote := &net.TCPAddr{IP: net.ParseIP(hostOnly(addr)), Port: portOf(addr)}
	err = cb(addr, remote, key)
	var ke *knownhosts.KeyError
	switch {
	case err == nil:
		return hostKeyPinned, nil
	case errors.As(err, &ke) && len(ke.Want) == 0:
		return hostKeyUnknown, nil
	case errors.As(err, &ke):
		return hostKeyDiffers, nil
	default:
		return hostKeyUnknown, fmt.Errorf("check known_hosts %s: %w", file, err)
	}
}

// hasPinned reports whether file pins any key for addr (a plain, unhashed entry).
func hasPinned(file, addr string) bool {
	data, err := os.ReadFile(file)
	if err != nil {
		return false
	}
	host := knownhosts.Normalize(addr)
	for _, line := range strings.Split(string(data), "\n") {
		if lineHosts(line, host) {
			return true
		}
	}
	return false
}

// lineHosts reports whether a known_hosts line names host in its (unhashed) host list.
func lineHosts(line, host string) bool {
	f := strings.Fields(line)
	if len(f) < 3 || strings.HasPrefix(f[0], "#") || strings.HasPrefix(f[0], "@") {
		return false
	}
	for _, h := range strings.Split(f[0], ",") {
		if h == host {
			return true
		}
	}
	return false
}

// pinHostKey writes key for addr into file. An identical pin is left alone (false, nil);
// a different pinned key is refused unless replace, which drops the old lines for addr.
func pinHostKey(file, addr string, key ssh.PublicKey, replace bool) (bool, error) {
	st, err := checkPinned(file, addr, key)
	if err != nil {
		return false, err
	}
	host := knownhosts.Normalize(addr)
	switch st {
	case hostKeyPinned:
		return false, nil
	case hostKeyDiffers:
		if !replace {
			return false, fmt.Errorf("%w: %s presents %s %s but %s pins another key for it",
				ErrHostKeyMismatch, host, key.Type(), ssh.FingerprintSHA256(key), file)
		}
		if err := dropHost(file, host); err != nil {
			return false, err
		}
	}
	if err := os.MkdirAll(filepath.Dir(file), 0o700); err != nil {
		return false, err
	}
	f, err := os.OpenFile(file, os.O_APPEND|os.O_CREATE|os.O_WRONLY, 0o600)
	if err != nil {
		return false, err
	}
	if _, err := fmt.Fprintln(f, knownhosts.Line([]string{host}, key)); err != nil {
		f.Close()
		return false, err
	}
	return true, f.Close()
}

// dropHost removes the unhashed lines naming host.
func dropHost(file, host string) error {
	data, err := os.ReadFile(file)
	if err != nil {
		return err
	}
	var out bytes.Buffer
	sc := bufio.NewScanner(bytes.NewReader(data))
	for sc.Scan() {
		if lineHosts(sc.Text(), host) {
			continue
		}
		out.WriteString(sc.Text() + "\n")
	}
	return writeKnownHosts(file, out.Bytes())
}

func hostOnly(addr string) string {
	h, _, err := net.SplitHostPort(addr)
	if err != nil {
		return addr
	}
	return h
}

func portOf(addr string) int {
	_, p, err := net.SplitHostPort(addr)
	if err != nil {
		return 22
	}
	var n int
	fmt.Sscanf(p, "%d", &n)
	return n
}

// knownHostsMu serialises this process's changes to known_hosts files: deploys of several VMs
// run concurrently (provision/fleet), and a pin, its undo and a destroy's removal each read,
// then write the file.
var knownHostsMu sync.Mutex

// pinWithUndo pins key for addr (pinHostKey) and, when it changed the file, returns the undo
// that a rollback runs (khSnapshot.restorer); both hold knownHostsMu.
func pinWithUndo(file, addr string, key ssh.PublicKey, replace bool) (bool, func() error, error) {
	knownHostsMu.Lock()
	defer knownHostsMu.Unlock()
	snap := snapshotKnownHosts(file)
	changed, err := pinHostKey(file, addr, key, replace)
	var undo func() error
	if changed {
		restore := snap.restorer(file, knownhosts.Line([]string{knownhosts.Normalize(addr)}, key))
		undo = func() error {
			knownHostsMu.Lock()
			defer knownHostsMu.Unlock()
			return restore()
		}
	}
	return changed, undo, err
}

// dropPinned removes the key pinned for addr under knownHostsMu (the check too: a concurrent
// writer truncates the file before it writes it); false when none was pinned.
func dropPinned(file, addr string) (bool, error) {
	knownHostsMu.Lock()
	defer knownHostsMu.Unlock()
	if !hasPinned(file, addr) {
		return false, nil
	}
	return true, dropHost(file, hostOnly(addr))
}

// khSnapshot is a known_hosts file as it was before a pin.
type khSnapshot struct {
	data    []byte
	existed bool
}

func snapshotKnownHosts(file string) khSnapshot {
	data, err := os.ReadFile(file)
	return khSnapshot{data: data, existed: err == nil}
}

// restorer undoes a pin that added line: when the file holds only what the pin made of it,
// it gets its old content back (or is removed when it did not exist); when something else
// changed it since, only line goes and the lines the pin replaced come back.
func (s khSnapshot) restorer(file, line string) func() error {
	after, _ := os.ReadFile(file)
	return func() error {
		now, err := os.ReadFile(file)
		if err != nil {
			return err
		}
		if bytes.Equal(now, after) {
			if !s.existed {
				return os.Remove(file)
			}
			return writeKnownHosts(file, s.data)
		}
		var out bytes.Buffer
		for _, l := range strings.SplitAfter(string(now), "\n") {
			if strings.TrimSpace(l) != strings.TrimSpace(line) && l != "" {
				out.WriteString(l)
			}
		}
		// lines of the old file that the pin dropped (--replace-host-key)
		for _, l := range strings.SplitAfter(string(s.data), "\n") {
			if l != "" && !strings.Contains(string(now), l) {
				out.WriteString(l)
			}
		}
		return writeKnownHosts(file, out.Bytes())
	}
}

// writeKnownHosts replaces file with data atomically (a temporary file renamed over it): a
// reader (the SSH host key check of another VM's deploy) never sees it truncated.
func writeKnownHosts(file string, data []byte) error {
	tmp, err := os.CreateTemp(filepath.Dir(file), "."+filepath.Base(file)+".*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name()) // gone after the rename; cleans up on failure
	if _, err := tmp.Write(data); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Chmod(0o600); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), file)
}
