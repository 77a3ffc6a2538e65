package provision

import (
	"go/parser"
	"go/token"
	"io/fs"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// TestImportFences: only provision/pve imports go-proxmox; no non-test file of provision
// imports the fakes or the steps.
func TestImportFences(t *testing.T) {
	err := filepath.WalkDir(".", func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() || !strings.HasSuffix(path, ".go") || strings.HasSuffix(path, "_test.go") {
			return err
		}
		f, err := parser.ParseFile(token.NewFileSet(), path, nil, parser.ImportsOnly)
		if err != nil {
			return err
		}
		for _, imp := range f.Imports {
			p, _ := strconv.Unquote(imp.Path.Value)
			switch {
			case strings.HasPrefix(p, "github.com/luthermonson/go-proxmox") && filepath.Dir(path) != "pve":
				t.Errorf("%s imports go-proxmox: only provision/pve may", path)
			case strings.HasPrefix(p, "github.com/aimachine/aimachine/fakes"), strings.HasPrefix(p, "github.com/aimachine/aimachine/steps"):
				t.Errorf("%s imports %s: provision must not depend on fakes or steps", path, p)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}
