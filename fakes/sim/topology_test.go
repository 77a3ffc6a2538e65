package sim_test

import (
	"context"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/aimachine/aimachine/fakes/sim"
)

func TestLoadTopology(t *testing.T) {
	y, err := sim.LoadTopology("testdata/valid-topology.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if len(y.Nodes) != 1 || y.Nodes[0].Name != "pve2" || y.Nodes[0].IOMMU || y.Nodes[0].MemoryGiB != 64 ||
		len(y.Nodes[0].PCI) != 1 || y.Nodes[0].PCI[0].IOMMUGroup != -1 || y.Nodes[0].PCI[0].MemoryMiB != 16311 {
		t.Errorf("yaml topology = %+v", y)
	}
	if len(y.Storages) != 1 || y.Storages[0].TotalBytes != 1<<40 || strings.Join(y.Storages[0].Content, ",") != "images,rootdir" {
		t.Errorf("yaml storages = %+v", y.Storages)
	}
	j, err := sim.LoadTopology("testdata/valid-topology.json")
	if err != nil {
		t.Fatal(err)
	}
	if len(j.Nodes) != 1 || j.Nodes[0].Cores != 8 || !j.Nodes[0].IOMMU {
		t.Errorf("json topology = %+v", j)
	}
	for file, want := range map[string]string{
		"testdata/invalid-unknown-key.yaml": `unknown field "iommu_enabled"`,
		"testdata/invalid-no-nodes.yaml":    "no nodes",
		"testdata/missing.yaml":             "no such file",
	} {
		if _, err := sim.LoadTopology(file); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("LoadTopology(%s) = %v, want an error containing %q", file, err, want)
		}
	}
}

// A topology file's root password is kept; the token secret it lacks is generated.
func TestTopologyFileCredentials(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	s, err := sim.Start(ctx, sim.Options{StateDir: t.TempDir(), TopologyFile: "testdata/valid-topology.json"})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if s.Password != "from-the-file" {
		t.Errorf("password = %q, want the file's", s.Password)
	}
	if len(s.TokenSecret) != 36 {
		t.Errorf("token secret %q: want a generated UUID", s.TokenSecret)
	}
}

func TestEnvRoundTrip(t *testing.T) {
	vars := map[string]string{
		"PROXMOX_VE_ENDPOINT": "https://127.0.0.1:8006/",
		"AIMACHINE_SSH_KEY":   "/tmp/dir with space/id_ed25519",
		"QUOTE":               "it's",
		"EMPTY":               "",
	}
	got, err := sim.ParseEnv(sim.MarshalEnv(vars))
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range vars {
		if got[k] != v {
			t.Errorf("%s = %q, want %q", k, got[k], v)
		}
	}
	if _, err := sim.ParseEnv([]byte("NOEQUALS\n")); err == nil {
		t.Error("ParseEnv accepted a line without '='")
	}
}

// The fleet topology: four nodes, eight GPUs of two models, one mapping spanning nodes, a VM
// that is not aimachine's; a running simulator can be reset onto it and back.
func TestFleetTopology(t *testing.T) {
	tp, err := sim.LoadTopology("testdata/fleet-topology.yaml")
	if err != nil {
		t.Fatal(err)
	}
	models := map[string]int{}
	for _, n := range tp.Nodes {
		for _, d := range n.PCI {
			if d.Class == "0x030000" {
				models[d.Model]++
			}
		}
	}
	if len(tp.Nodes) != 4 || len(models) != 2 || models["NVIDIA GeForce RTX 5060 Ti"]+models["NVIDIA GeForce RTX 4090"] != 8 {
		t.Fatalf("nodes %d, GPUs %v: want 4 nodes and 8 GPUs of two models", len(tp.Nodes), models)
	}
	spanning := false
	for _, m := range tp.Mappings {
		nodes := map[string]bool{}
		for _, e := range m.Map {
			for _, kv := range strings.Split(e, ",") {
				if v, ok := strings.CutPrefix(kv, "node="); ok {
					nodes[v] = true
				}
			}
		}
		spanning = spanning || len(nodes) > 1
	}
	if !spanning {
		t.Fatalf("mappings %v: none spans nodes", tp.Mappings)
	}

	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	s, err := sim.Start(ctx, sim.Options{StateDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	var snap struct {
		IOMMU    map[string]bool
		Mappings map[string]string
	}
	raw, err := os.ReadFile("testdata/fleet-topology.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Control().ResetTopology(ctx, raw); err != nil {
		t.Fatal(err)
	}
	if err := s.Control().State(ctx, &snap); err != nil {
		t.Fatal(err)
	}
	if len(snap.IOMMU) != 4 || !strings.Contains(snap.Mappings["rtx5060ti"], "node=pve3") {
		t.Fatalf("state after ResetTopology: %+v", snap)
	}
	if err := s.Control().Reset(ctx); err != nil {
		t.Fatal(err)
	}
	snap.IOMMU = nil
	if err := s.Control().State(ctx, &snap); err != nil || len(snap.IOMMU) != 1 {
		t.Fatalf("state after Reset: %+v, %v", snap, err)
	}
}
