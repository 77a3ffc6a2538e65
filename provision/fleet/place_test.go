package fleet_test

import (
	"context"
	"errors"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/aimachine/aimachine/catalog"
	"github.com/aimachine/aimachine/fakes/sim"
	"github.com/aimachine/aimachine/provision"
	"github.com/aimachine/aimachine/provision/fleet"
)

const (
	fleetTopology = "../../fakes/sim/testdata/fleet-topology.yaml"
	fleetCatalog  = "../../catalog/testdata/valid-fleet.yaml"
)

// startFleet starts the simulator on the four-node topology and connects to it.
func startFleet(t testing.TB, scale float64) (*sim.Sim, *provision.Client) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	s, err := sim.Start(ctx, sim.Options{TimeScale: scale, TopologyFile: fleetTopology, StateDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	env := s.Info().Env()
	o, err := provision.ConnOptionsFromEnv(func(k string) string { return env[k] })
	if err != nil {
		t.Fatal(err)
	}
	c, err := provision.Connect(ctx, o)
	if err != nil {
		t.Fatal(err)
	}
	return s, c
}

// loadFleet is the fleet catalog with the simulator's SSH key.
func loadFleet(t testing.TB, s *sim.Sim, edit func(string) string) *catalog.Catalog {
	t.Helper()
	data, err := os.ReadFile(fleetCatalog)
	if err != nil {
		t.Fatal(err)
	}
	text := strings.ReplaceAll(string(data), "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIEyBEct9p+/3BQlA0E/FkkGXIOT1/sePYm3vsIcQTqBH aimachine-testdata", s.Info().SSHPublicKey)
	if edit != nil {
		text = edit(text)
	}
	cat, err := catalog.Parse([]byte(text), "fleet.yaml")
	if err == nil {
		err = cat.Validate()
	}
	if err != nil {
		t.Fatal(err)
	}
	return cat
}

func TestPlaceSpreadsAndReserves(t *testing.T) {
	s, c := startFleet(t, 0)
	cat := loadFleet(t, s, nil)
	names, err := fleet.Select(cat, "", true)
	if err != nil {
		t.Fatal(err)
	}
	placed, ps, err := fleet.Place(context.Background(), c.API(), cat, names)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, p := range ps {
		got = append(got, p.VM+"="+p.Node)
		if !p.Auto || p.Existing || !strings.Contains(p.Why, "node: auto → "+p.Node) {
			t.Errorf("%+v: want an auto placement that says why", p)
		}
		if vm, _ := placed.VM(p.VM); vm.Node != p.Node {
			t.Errorf("placed catalog has %s on %s, placement says %s", p.VM, vm.Node, p.Node)
		}
	}
	// Most free devices first, then most free memory (VM 900 runs on pve2), then name.
	want := "gpu-5060-1=pve1 gpu-5060-2=pve3 gpu-5060-3=pve2 gpu-5060-4=pve1 gpu-5060-5=pve3 gpu-5060-6=pve2 gpu-4090-7=pve4 gpu-4090-8=pve4"
	if strings.Join(got, " ") != want {
		t.Errorf("placements\n got %s\nwant %s", strings.Join(got, " "), want)
	}
	if vm, _ := cat.VM("gpu-5060-1"); vm.Node != catalog.NodeAuto {
		t.Errorf("Place changed the caller's catalog: %s", vm.Node)
	}
}

func TestPlaceSaysWhyNothingFits(t *testing.T) {
	s, c := startFleet(t, 0)
	// a seventh RTX 5060 Ti VM: six devices in the mapping
	cat := loadFleet(t, s, func(text string) string {
		vm := text[strings.Index(text, "  - id: 201"):strings.Index(text, "  - id: 202")]
		vm = strings.Replace(vm, "id: 201", "id: 209", 1)
		vm = strings.Replace(vm, "name: gpu-5060-1", "name: gpu-5060-9", 1)
		return text + vm
	})
	names, _ := fleet.Select(cat, "", true)
	_, _, err := fleet.Place(context.Background(), c.API(), cat, names)
	var nf *fleet.NoFitError
	if !errors.As(err, &nf) || !errors.Is(err, fleet.ErrNoFit) || nf.VM != "gpu-5060-9" {
		t.Fatalf("err = %v, want a NoFitError for gpu-5060-9", err)
	}
	for _, want := range []string{
		"pve1: no free device of rtx5060ti (2 on the node, held by 2 placed by this run)",
		"pve4: mapping rtx5060ti has no device on it",
	} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("err = %v\nwant it to say %q", err, want)
		}
	}

	// Memory: a VM too large for every node's free memory is refused with the numbers.
	cat = loadFleet(t, s, func(text string) string {
		return strings.Replace(text, "memory_mb: 32768", "memory_mb: 98000", 1)
	})
	_, _, err = fleet.Place(context.Background(), c.API(), cat, []string{"gpu-5060-1"})
	if err == nil || !strings.Contains(err.Error(), "pve1: 98000 MiB of memory do not fit") {
		t.Fatalf("err = %v, want the memory that does not fit", err)
	}
}

// A running VM holding a device of the mapping leaves the node one device.
func TestPlaceCountsHeldDevices(t *testing.T) {
	s, c := startFleet(t, 0)
	ctx := context.Background()
	cat := loadFleet(t, s, nil)
	// VM 201 deployed (infrastructure only) on the node placement chose: pve1.
	placed, _, err := fleet.Place(ctx, c.API(), cat, []string{"gpu-5060-1"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.Deploy(ctx, placed, "gpu-5060-1", provision.DeployOptions{InfraOnly: true,
		SSH: provision.SSHOptions{KnownHostsFile: t.TempDir() + "/known_hosts", KeyFile: s.Info().SSHKeyFile, Jump: s.Info().JumpHost()}}); err != nil {
		t.Fatal(err)
	}
	_, ps, err := fleet.Place(ctx, c.API(), cat, []string{"gpu-5060-1", "gpu-5060-2", "gpu-5060-3", "gpu-5060-4"})
	if err != nil {
		t.Fatal(err)
	}
	if !ps[0].Existing || ps[0].Node != "pve1" {
		t.Errorf("deployed VM: %+v, want it to stay on pve1", ps[0])
	}
	// pve1 has one free device left: pve3 and pve2 first, then pve1 (one free each, pve1 and
	// pve3 with the same free memory: the name decides).
	if ps[1].Node != "pve3" || ps[2].Node != "pve2" || ps[3].Node != "pve1" {
		t.Errorf("placements %+v", ps[1:])
	}
}

func copyFile(t testing.TB, from, to string) {
	t.Helper()
	data, err := os.ReadFile(from)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(to, data, 0o600); err != nil {
		t.Fatal(err)
	}
}
