package guest

import (
	"go/parser"
	"go/token"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// TestImportFence: the fake never imports the provisioning library (or steps).
func TestImportFence(t *testing.T) {
	files, _ := filepath.Glob("*.go")
	for _, f := range files {
		af, err := parser.ParseFile(token.NewFileSet(), f, nil, parser.ImportsOnly)
		if err != nil {
			t.Fatal(err)
		}
		for _, imp := range af.Imports {
			p, _ := strconv.Unquote(imp.Path.Value)
			if strings.HasPrefix(p, "github.com/aimachine/aimachine/provision") || strings.HasPrefix(p, "github.com/aimachine/aimachine/steps") {
				t.Errorf("%s imports %s", f, p)
			}
		}
	}
}

// TestFilesystemConfinement: guest paths, .. and absolute symlinks all stay inside the guest root.
func TestFilesystemConfinement(t *testing.T) {
	vm := newVM(t, 0, nil).ready()
	c := vm.client()
	if got := vm.must(c, "cat ../../../../../etc/hostname"); got != "vm-llm-aimachine\n" {
		t.Errorf("../ escape read %q", got)
	}
	vm.must(c, "ln -s / ~/slash && ln -s /etc/shadow /tmp/sh")
	if r := vm.sh(c, "cat /tmp/sh"); r.code != 1 || !strings.Contains(r.stderr, "Permission denied") {
		t.Errorf("symlink to a root-only file: %+v", r)
	}
	if got := vm.must(c, "sudo cat /tmp/sh"); got != "root:*:20000:0:99999:7:::\n" {
		t.Errorf("symlink left the guest: %q", got)
	}
	vm.must(c, "echo inside | sudo tee ~/slash/etc/aimachine-probe >/dev/null")
	if _, err := os.Stat("/etc/aimachine-probe"); err == nil {
		t.Fatal("a guest write reached the host's /etc")
	}
	if got := vm.must(c, "cat /etc/aimachine-probe"); got != "inside\n" {
		t.Errorf("write through symlink: %q", got)
	}
}
