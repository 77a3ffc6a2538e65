package pve

import (
	"go/parser"
	"go/token"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// TestImportFence: nothing under fakes/ imports provision/ (the fakes must not be shaped by the library).
func TestImportFence(t *testing.T) {
	fakes, err := filepath.Abs("..")
	if err != nil {
		t.Fatal(err)
	}
	if filepath.Base(fakes) != "fakes" {
		t.Fatalf("expected to run in fakes/pve, parent is %s", fakes)
	}
	checked := 0
	err = filepath.WalkDir(fakes, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() || !strings.HasSuffix(p, ".go") {
			return nil
		}
		src, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		f, err := parser.ParseFile(token.NewFileSet(), p, src, parser.ImportsOnly)
		if err != nil {
			return err
		}
		checked++
		for _, imp := range f.Imports {
			path, _ := strconv.Unquote(imp.Path.Value)
			if path == "github.com/aimachine/aimachine/provision" || strings.HasPrefix(path, "github.com/aimachine/aimachine/provision/") ||
				strings.HasPrefix(path, "github.com/aimachine/aimachine/steps") {
				t.Errorf("%s imports %s: fakes must never import provision or steps", p, path)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if checked == 0 {
		t.Fatal("no Go files found under fakes/")
	}
}
