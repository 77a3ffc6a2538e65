//go:build unix

package catalog

import (
	"io"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestKeyFileRefusesWhatIsNotARegularFile: a device would be read forever (/dev/zero) and a
// FIFO without a writer would block the open; both are refused after one non-blocking open
// and an fstat, without reading a byte.
func TestKeyFileRefusesWhatIsNotARegularFile(t *testing.T) {
	dir := t.TempDir()
	fifo := filepath.Join(dir, "key.pub")
	if err := syscall.Mkfifo(fifo, 0o600); err != nil {
		t.Fatal(err)
	}
	big := filepath.Join(dir, "big.pub")
	if err := os.WriteFile(big, []byte(strings.Repeat("x", MaxKeyFileBytes+1)), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct{ file, want string }{
		{"/dev/zero", "public key file /dev/zero is a character device, not a regular file"},
		{fifo, "public key file " + fifo + " is a FIFO (named pipe), not a regular file"},
		{dir, "public key file " + dir + " is a directory, not a regular file"},
		{big, "public key file " + big + " is 65537 bytes, more than 65536"},
	} {
		t.Run(filepath.Base(tc.file), func(t *testing.T) {
			k := SSHKey{File: tc.file}
			_, err := k.Resolve()
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("got %v, want %q", err, tc.want)
			}
		})
	}
	// Through Validate: the error sits at the field, the catalog never blocks.
	c, err := Parse([]byte(`version: 1
network: {subnet: 192.168.0.0/24, gateway: 192.168.0.1}
nodes: [{name: pve, storages: [local, local-lvm]}]
vms:
  - {id: 120, name: v, node: pve, cores: 1, memory_mb: 512, disk: {size_gb: 8, storage: local-lvm},
     cloud_init: {user: ubuntu, ssh_keys: [{file: `+fifo+`}]}}
`), "fifo.yml")
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Validate(); err == nil || !strings.Contains(err.Error(), "fifo.yml:6:51: vms[0].cloud_init.ssh_keys[0].file: public key file "+fifo+" is a FIFO") {
		t.Errorf("Validate: %v", err)
	}
}

// TestKeyFileReadHasADeadline: a read that never returns (a hung network mount) ends the
// check with an error naming the file; the reader is left to finish on its own.
func TestKeyFileReadHasADeadline(t *testing.T) {
	path := filepath.Join(t.TempDir(), "key.pub")
	if err := os.WriteFile(path, []byte(testKey(t)+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	release := make(chan struct{})
	defer close(release)
	oldRead, oldTimeout := readAll, keyFileTimeout
	t.Cleanup(func() { readAll, keyFileTimeout = oldRead, oldTimeout })
	readAll = func(r io.Reader) ([]byte, error) { <-release; return nil, io.ErrUnexpectedEOF }
	keyFileTimeout = 10 * time.Millisecond
	k := SSHKey{File: path}
	_, err := k.Resolve()
	if err == nil || !strings.Contains(err.Error(), "public key file "+path+": no answer after 10ms (a hung network mount?)") {
		t.Errorf("got %v", err)
	}
}

// TestLoadRefusesWhatIsNotARegularFile: the catalog path gets the key files' treatment: a FIFO
// without a writer used to block the open until a second Ctrl-C.
func TestLoadRefusesWhatIsNotARegularFile(t *testing.T) {
	dir := t.TempDir()
	fifo := filepath.Join(dir, "catalog.yml")
	if err := syscall.Mkfifo(fifo, 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct{ file, want string }{
		{fifo, "catalog " + fifo + " is a FIFO (named pipe), not a regular file"},
		{"/dev/zero", "catalog /dev/zero is a character device, not a regular file"},
		{dir, "catalog " + dir + " is a directory, not a regular file"},
	} {
		t.Run(filepath.Base(tc.file), func(t *testing.T) {
			done := make(chan error, 1)
			go func() {
				_, err := Load(tc.file)
				done <- err
			}()
			select {
			case err := <-done:
				if err == nil || !strings.Contains(err.Error(), tc.want) {
					t.Errorf("got %v, want %q", err, tc.want)
				}
			case <-time.After(10 * time.Second):
				t.Fatal("Load blocked")
			}
		})
	}
}
