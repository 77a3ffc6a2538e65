package pve

import (
	"flag"
	"os"
	"testing"
)

var update = flag.Bool("update", false, "rewrite PARITY.md from the route table")

func TestParity(t *testing.T) {
	want := ParityMarkdown()
	if *update {
		if err := os.WriteFile("PARITY.md", []byte(want), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	got, err := os.ReadFile("PARITY.md")
	if err != nil {
		t.Fatalf("PARITY.md missing (run go test ./fakes/pve -run TestParity -update): %v", err)
	}
	if string(got) != want {
		t.Fatal("PARITY.md is stale: run go test ./fakes/pve -run TestParity -update")
	}
}
