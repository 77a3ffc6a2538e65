package catalog

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

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
		path := k.Path()
		data, err := os.ReadFile(path)
		if err != nil {
			return "", fmt.Errorf("read public key file: %w (hint: create it with ssh-keygen -t ed25519, or give the key literally under key:)", err)
		}
		what := fmt.Sprintf("file %q", k.File)
		return parseOneKey(string(data), what, what)
	}
	return "", errors.New("set key (a public key, e.g. \"ssh-ed25519 AAAA… me@host\") or file (a .pub file)")
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
