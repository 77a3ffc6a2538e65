// Command demo is `make demo`: it starts the simulated Proxmox host (in Docker when it answers,
// in this process otherwise), deploys VM 140 from a copy of the catalog that carries the
// simulator's SSH key, verifies it with `aimachine verify`, and says where the reports are.
//
// It runs the aimachine binary given as its first argument (make builds bin/aimachine) with
// the simulator's environment, exactly as a user would after sourcing pvesim.env.
//
// With --serve (make sim) it only starts the simulator in the foreground, writes the catalog
// copy and a private known_hosts, prints the two lines to paste into another shell, and waits
// for Ctrl-C.
package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/aimachine/aimachine/catalog"
	"github.com/aimachine/aimachine/fakes/container"
	"github.com/aimachine/aimachine/fakes/sim"
)

const vmName = "vm-llm-aimachine"

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	if err := run(ctx, os.Args[1:]); err != nil {
		fmt.Fprintln(os.Stderr, "✗ demo:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, args []string) error {
	serve := len(args) > 0 && args[0] == "--serve"
	if serve {
		args = args[1:]
	}
	if len(args) < 1 {
		return errors.New("usage: demo [--serve] PATH/TO/aimachine [CATALOG]")
	}
	bin, err := filepath.Abs(args[0])
	if err != nil {
		return err
	}
	catPath := "infrastructure-catalog.yml"
	if len(args) > 1 {
		catPath = args[1]
	}
	scale := 0.05
	if v := os.Getenv("AIMACHINE_TIME_SCALE"); v != "" {
		if scale, err = strconv.ParseFloat(v, 64); err != nil || scale < 0 {
			return fmt.Errorf("AIMACHINE_TIME_SCALE=%q: want a number >= 0", v)
		}
	}
	stateName := "demo"
	if serve {
		stateName = "sim"
	}
	state, err := filepath.Abs(filepath.Join(".state", stateName))
	if err != nil {
		return err
	}
	if err := os.MkdirAll(state, 0o700); err != nil {
		return err
	}

	s, err := startSimulator(ctx, scale, filepath.Join(state, "pvesim"))
	if err != nil {
		return err
	}
	defer s.Close()
	e := s.Info()
	fmt.Fprintf(os.Stderr, "✓ simulated Proxmox host at %s (time scale %g; env file %s)\n", e.BaseURL, scale, e.EnvFile)

	demoCat, kh, err := prepare(catPath, state, e)
	if err != nil {
		return err
	}
	if serve {
		return serveUntilInterrupted(ctx, bin, demoCat, kh, e)
	}
	env := os.Environ()
	for k, v := range e.Env() {
		env = append(env, k+"="+v)
	}
	start := time.Now()
	fmt.Fprintf(os.Stderr, "→ aimachine deploy --vm %s --catalog %s\n", vmName, rel(demoCat))
	if err := aimachine(ctx, bin, env, "deploy", "--vm", vmName, "--catalog", demoCat, "--known-hosts", kh); err != nil {
		return fmt.Errorf("deploy: %w", err)
	}
	fmt.Fprintf(os.Stderr, "✓ deployed in %s\n", time.Since(start).Round(100*time.Millisecond))
	fmt.Fprintf(os.Stderr, "→ aimachine verify --vm %s\n", vmName)
	if err := aimachine(ctx, bin, env, "verify", "--vm", vmName, "--catalog", demoCat, "--known-hosts", kh); err != nil {
		return fmt.Errorf("verify: %w", err)
	}
	fmt.Fprintln(os.Stderr, "✓ verified")
	if dir := newestReport("reports", vmName); dir != "" {
		fmt.Fprintf(os.Stderr, "reports: %s/ (evidence.json, transcript.log)\n", dir)
	}
	fmt.Fprintln(os.Stderr, "scenario reports (make test / make bdd): reports/junit.xml, reports/cucumber.json")
	return nil
}

// startSimulator runs pvesim in Docker when it answers (unless AIMACHINE_TARGET=inprocess),
// in this process otherwise, and says which.
func startSimulator(ctx context.Context, scale float64, dir string) (sim.Target, error) {
	sctx, cancel := context.WithTimeout(ctx, 5*time.Minute)
	defer cancel()
	target := os.Getenv("AIMACHINE_TARGET")
	if target != "inprocess" {
		derr := container.DockerAvailable(sctx)
		if derr == nil {
			fmt.Fprintln(os.Stderr, "… starting the simulator in Docker (building the FROM-scratch image on first use)")
			if err := os.RemoveAll(dir); err != nil {
				return nil, err
			}
			s, err := container.Start(sctx, container.Options{TimeScale: scale, StateDir: dir})
			if err != nil {
				return nil, err
			}
			return s, nil
		}
		if target == "container" {
			return nil, derr
		}
		fmt.Fprintf(os.Stderr, "… Docker is not available (%v): running the simulator in this process\n", derr)
	} else {
		fmt.Fprintln(os.Stderr, "… AIMACHINE_TARGET=inprocess: running the simulator in this process")
	}
	if err := os.RemoveAll(dir); err != nil {
		return nil, err
	}
	return sim.Start(sctx, sim.Options{TimeScale: scale, StateDir: dir})
}

// prepare writes the demo catalog (the simulator's public key as VM 140's cloud-init key: the
// sample's key is a throwaway whose private half is gone) and a fresh known_hosts that pins
// only the jump host.
func prepare(catPath, state string, e sim.Endpoint) (string, string, error) {
	cat, err := catalog.LoadValid(catPath)
	if err != nil {
		return "", "", err
	}
	vm, err := cat.VM(vmName)
	if err != nil {
		return "", "", err
	}
	data, err := os.ReadFile(catPath)
	if err != nil {
		return "", "", err
	}
	text := string(data)
	for _, k := range vm.CloudInit.SSHKeys {
		if k.Key == "" {
			return "", "", fmt.Errorf("%s: VM %s uses a key file; the demo needs literal keys to replace", catPath, vmName)
		}
		text = strings.ReplaceAll(text, k.Key, e.SSHPublicKey)
	}
	out := filepath.Join(state, "catalog.yml")
	if err := os.WriteFile(out, []byte(text), 0o600); err != nil {
		return "", "", err
	}
	if _, err := catalog.LoadValid(out); err != nil {
		return "", "", fmt.Errorf("the demo catalog: %w", err)
	}
	kh := filepath.Join(state, "known_hosts")
	khData, err := os.ReadFile(e.KnownHostsFile)
	if err != nil {
		return "", "", err
	}
	return out, kh, os.WriteFile(kh, khData, 0o600)
}

func aimachine(ctx context.Context, bin string, env []string, args ...string) error {
	cmd := exec.CommandContext(ctx, bin, args...)
	cmd.Env = env
	cmd.Stdout, cmd.Stderr = os.Stdout, os.Stderr
	return cmd.Run()
}

// newestReport is the newest reports/<vm>-<run> directory.
func newestReport(dir, vm string) string {
	m, _ := filepath.Glob(filepath.Join(dir, vm+"-*"))
	sort.Slice(m, func(i, j int) bool {
		a, _ := os.Stat(m[i])
		b, _ := os.Stat(m[j])
		return a != nil && b != nil && a.ModTime().After(b.ModTime())
	})
	if len(m) == 0 {
		return ""
	}
	return m[0]
}

func rel(p string) string {
	wd, err := os.Getwd()
	if err != nil {
		return p
	}
	if r, err := filepath.Rel(wd, p); err == nil {
		return r
	}
	return p
}

// serveUntilInterrupted prints the lines that point a shell at the simulator and waits for
// Ctrl-C.
func serveUntilInterrupted(ctx context.Context, bin, cat, kh string, e sim.Endpoint) error {
	fmt.Printf(`
The simulator runs in this terminal until Ctrl-C. In another shell, paste these two lines:

  source %s
  export AIMACHINE_CATALOG=%s AIMACHINE_KNOWN_HOSTS=%s PATH="%s:$PATH"

then walk it (README, "Trying it on the simulator"):

  aimachine plan %[5]s          # + create …, exit 0 (--detailed-exitcode: 2)
  aimachine deploy %[5]s
  aimachine verify %[5]s
  aimachine destroy %[5]s --yes
`, e.EnvFile, cat, kh, filepath.Dir(bin), vmName)
	<-ctx.Done()
	fmt.Fprintln(os.Stderr, "\n… stopping the simulator")
	return nil
}
