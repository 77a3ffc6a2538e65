// Not generated: the aimachine fork's own code.

package xssh_test

import (
	"bytes"
	"sort"
	"testing"

	"github.com/aimachine/aimachine/internal/xssh/internal/forkgen"
)

// TestForkIsUpstreamPlusPatches regenerates the fork from the golang.org/x/crypto version go.mod
// requires and compares it with the committed files: the fork is upstream's code plus the
// patches in forkgen/patches.go, nothing else. After bumping x/crypto run
// `go generate ./internal/xssh`; a patch whose upstream text moved fails here and there.
func TestForkIsUpstreamPlusPatches(t *testing.T) {
	dir, version, err := forkgen.Source(".")
	if err != nil {
		t.Fatal(err)
	}
	want, err := forkgen.Generate(dir, version)
	if err != nil {
		t.Fatal(err)
	}
	got, err := forkgen.Committed(".")
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for n := range want {
		names = append(names, n)
	}
	for n := range got {
		if _, ok := want[n]; !ok {
			names = append(names, n)
		}
	}
	sort.Strings(names)
	for _, n := range names {
		switch w, g := want[n], got[n]; {
		case g == nil:
			t.Errorf("%s: missing (run go generate ./internal/xssh)", n)
		case w == nil:
			t.Errorf("%s: marked generated but upstream %s@%s has no such file (run go generate ./internal/xssh)", n, forkgen.Module, version)
		case !bytes.Equal(w, g):
			t.Errorf("%s: differs from upstream %s@%s plus the patches (edit forkgen/patches.go, then go generate ./internal/xssh)", n, forkgen.Module, version)
		}
	}
	if len(want) < 20 {
		t.Fatalf("only %d files generated: the copy list is wrong", len(want))
	}
}
