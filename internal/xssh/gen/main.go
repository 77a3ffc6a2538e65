// Command gen writes internal/xssh from the golang.org/x/crypto version go.mod requires
// (run by `go generate ./internal/xssh` from the repository root or internal/xssh).
package main

import (
	"fmt"
	"os"
	"path/filepath"

	"github.com/aimachine/aimachine/internal/xssh/internal/forkgen"
)

func main() {
	root, err := filepath.Abs(".")
	if err != nil {
		fail(err)
	}
	dir, version, err := forkgen.Source(root)
	if err != nil {
		fail(err)
	}
	files, err := forkgen.Generate(dir, version)
	if err != nil {
		fail(err)
	}
	if err := forkgen.Write(root, files); err != nil {
		fail(err)
	}
	fmt.Printf("internal/xssh: %d files from %s@%s, %d patches\n", len(files), forkgen.Module, version, len(forkgen.Patches))
}

func fail(err error) {
	fmt.Fprintln(os.Stderr, "gen:", err)
	os.Exit(1)
}
