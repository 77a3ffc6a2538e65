package catalog

import (
	"crypto/ed25519"
	"crypto/rand"
	"encoding/pem"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/crypto/ssh"
)

// testKey is the public half of a throwaway key (testdata/id_ed25519_testdata.pub).
func testKey(t *testing.T) string {
	t.Helper()
	b, err := os.ReadFile("testdata/id_ed25519_testdata.pub")
	if err != nil {
		t.Fatal(err)
	}
	return strings.TrimSpace(string(b))
}

func TestSSHKeyResolve(t *testing.T) {
	key := testKey(t)
	home := t.TempDir()
	t.Setenv("HOME", home)
	if err := os.MkdirAll(filepath.Join(home, ".ssh"), 0o700); err != nil {
		t.Fatal(err)
	}
	writeFile(t, filepath.Join(home, ".ssh", "id_ed25519.pub"), key+"\n")
	catDir := t.TempDir()
	writeFile(t, filepath.Join(catDir, "keys", "admin.pub"), "# the admin\n\n"+key+"\n")
	writeFile(t, filepath.Join(catDir, "two.pub"), key+"\n"+key+"\n")
	writeFile(t, filepath.Join(catDir, "empty.pub"), "\n# nothing\n")
	// A private key must be refused without a byte of it in the error.
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	block, err := ssh.MarshalPrivateKey(priv, "")
	if err != nil {
		t.Fatal(err)
	}
	private := string(pem.EncodeToMemory(block))
	writeFile(t, filepath.Join(catDir, "id_ed25519"), private)

	for _, tc := range []struct {
		name    string
		key     SSHKey
		want    string // the resolved key, or "" when an error is wanted
		wantErr string
	}{
		{"literal", SSHKey{Key: "  " + key + "\n"}, key, ""},
		{"home file", SSHKey{File: "~/.ssh/id_ed25519.pub"}, key, ""},
		{"relative to the catalog", SSHKey{File: "keys/admin.pub", dir: catDir}, key, ""},
		{"absolute", SSHKey{File: filepath.Join(catDir, "keys", "admin.pub"), dir: "/elsewhere"}, key, ""},
		{"missing file", SSHKey{File: "~/.ssh/nope.pub"}, "", "read public key file: open " + filepath.Join(home, ".ssh", "nope.pub")},
		{"two keys in a file", SSHKey{File: "two.pub", dir: catDir}, "", `file "two.pub" holds 2 keys: list each as its own ssh_keys entry`},
		{"empty file", SSHKey{File: "empty.pub", dir: catDir}, "", `file "empty.pub" holds no public key`},
		{"private key file", SSHKey{File: "id_ed25519", dir: catDir}, "", `file "id_ed25519" holds a private key`},
		{"private key literal", SSHKey{Key: private}, "", "the key holds a private key"},
		{"garbage", SSHKey{Key: "ssh-ed25519 AAAA"}, "", `key "ssh-ed25519 AAAA" does not parse as an authorized_keys line`},
		{"neither", SSHKey{}, "", "set key (a public key"},
		{"both", SSHKey{Key: key, File: "x.pub"}, "", "set key or file, not both"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := tc.key.Resolve()
			if tc.wantErr == "" {
				if err != nil || got != tc.want {
					t.Errorf("got %q, %v; want %q", got, err, tc.want)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Errorf("got %q, %v; want an error containing %q", got, err, tc.wantErr)
			}
			if err != nil && (strings.Contains(err.Error(), "PRIVATE") || strings.Contains(err.Error(), "b3BlbnNzaC1rZXkt")) {
				t.Errorf("the error quotes the private key: %v", err)
			}
		})
	}
}

func TestPublicKeysOfTheSample(t *testing.T) {
	c, err := Load("testdata/valid-mapping.yaml") // a key file next to the catalog
	if err != nil {
		t.Fatal(err)
	}
	keys, err := c.VMs[0].PublicKeys()
	if err != nil || len(keys) != 1 || keys[0] != testKey(t) {
		t.Errorf("PublicKeys = %q, %v", keys, err)
	}
	c.VMs[0].CloudInit.SSHKeys = append(c.VMs[0].CloudInit.SSHKeys, SSHKey{Key: "nope"})
	if _, err := c.VMs[0].PublicKeys(); err == nil || !strings.Contains(err.Error(), `VM "llm-a" cloud_init.ssh_keys[1]: key "nope"`) {
		t.Errorf("PublicKeys with a bad key: %v", err)
	}
}

func writeFile(t *testing.T, path, content string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
}
