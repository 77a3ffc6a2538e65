package nvgpu

import (
	"flag"
	"os"
	"regexp"
	"strconv"
	"strings"
	"testing"
)

var reID = regexp.MustCompile(`^[0-9a-f]{4}$`)

// TestTableConsistent checks the rules every row must follow; the facts themselves are checked
// against their sources by the simulated guest's device table test (fakes/guest TestDeviceTable).
func TestTableConsistent(t *testing.T) {
	seen := map[string]bool{}
	for _, d := range All() {
		if !reID.MatchString(d.DeviceID) || seen[d.DeviceID] {
			t.Errorf("%s: device id must be unique lower-case hex", d.DeviceID)
		}
		seen[d.DeviceID] = true
		if d.AudioID != "" && !reID.MatchString(d.AudioID) {
			t.Errorf("%s: audio id %q", d.DeviceID, d.AudioID)
		}
		if d.Class != "030000" && d.Class != "030200" {
			t.Errorf("%s: class %q", d.DeviceID, d.Class)
		}
		if d.NoblePCIName != "" && d.NoblePCIName != d.PCIName {
			t.Errorf("%s: noble's name %q differs from today's %q (pci.ids renamed it?)", d.DeviceID, d.NoblePCIName, d.PCIName)
		}
		if d.OpenRequired && !d.OpenSupported {
			t.Errorf("%s: requires the open module it cannot use", d.DeviceID)
		}
		major, _, ok := strings.Cut(d.ComputeCap, ".")
		m, err := strconv.Atoi(major)
		if !ok || err != nil {
			t.Errorf("%s: compute capability %q", d.DeviceID, d.ComputeCap)
		}
		// GSP (open module) arrived with Turing (7.5); Blackwell (10.x, 12.x) needs it
		if d.OpenSupported != (d.ComputeCap >= "7.5" || m >= 10) || d.OpenRequired != (m >= 10) {
			t.Errorf("%s: open-module flags do not match compute capability %s", d.DeviceID, d.ComputeCap)
		}
		if !strings.HasPrefix(d.Name, "NVIDIA ") && !strings.HasPrefix(d.Name, "Tesla ") || d.MemoryMiB <= 0 || d.BandwidthGBs <= 0 || d.PowerW <= 0 || d.Sources == "" {
			t.Errorf("%s: incomplete row %+v", d.DeviceID, d)
		}
		if got, ok := Lookup("0x" + strings.ToUpper(d.DeviceID)); !ok || got.DeviceID != d.DeviceID {
			t.Errorf("Lookup(0x%s) failed", strings.ToUpper(d.DeviceID))
		}
	}
	for _, want := range []string{"2d04", "2b85", "2684", "2803", "2204", "27b8", "20b5", "2330", "1eb8", "1b06"} {
		if !seen[want] {
			t.Errorf("the table lacks %s", want)
		}
	}
	if d, ok := Lookup(Default); !ok || d.Name != "NVIDIA GeForce RTX 5060 Ti" {
		t.Errorf("default device %+v", d)
	}
}

func TestSupports(t *testing.T) {
	pascal, _ := Lookup("1b06")
	ada, _ := Lookup("2684")
	for _, c := range []struct {
		d      Device
		branch int
		open   bool
		want   bool
	}{
		{pascal, 580, false, true}, {pascal, 580, true, false}, {pascal, 595, false, false},
		{ada, 595, true, true}, {ada, 595, false, true}, {ada, 580, true, true},
	} {
		if got := c.d.Supports(c.branch, c.open); got != c.want {
			t.Errorf("%s Supports(%d, open=%v) = %v", c.d.Name, c.branch, c.open, got)
		}
	}
}

var update = flag.Bool("update", false, "rewrite DEVICES.md")

func TestDevicesMarkdown(t *testing.T) {
	want := Markdown()
	if *update {
		if err := os.WriteFile("DEVICES.md", []byte(want), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	got, err := os.ReadFile("DEVICES.md")
	if err != nil || string(got) != want {
		t.Fatalf("DEVICES.md is stale: run go test ./fakes/nvgpu -run TestDevicesMarkdown -update")
	}
}
