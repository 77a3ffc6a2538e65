package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"
	"time"

	"github.com/aimachine/aimachine/fakes/sim"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	os.Exit(run(ctx, os.Args[1:], os.Stdout, os.Stderr))
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("pvesim", flag.ContinueOnError)
	fs.SetOutput(stderr)
	listen := fs.String("listen", "127.0.0.1:8006", "address of the HTTPS API (pveproxy)")
	sshListen := fs.String("ssh-listen", "127.0.0.1:2222", "address of the SSH jump host")
	stateDir := fs.String("state-dir", "", "directory for the env file, CA, keys and guest filesystems (default: a temporary one, removed on exit)")
	timeScale := fs.Float64("time-scale", 1, "multiplier of simulated durations (0 = instant, 1 = real time)")
	topology := fs.String("topology", "", "topology file, YAML or JSON (default: node pve with an RTX 5060 Ti at 0000:01:00, IOMMU on, storages local and local-lvm)")
	authDelay := fs.Duration("auth-delay", 3*time.Second, "delay of 401 answers (pveproxy: 3s)")
	pveVersion := fs.String("pve-version", "", "simulated pve-manager version (default: the fake's)")
	advertise := fs.String("advertise-host", "127.0.0.1", "host written into the env file when listening on 0.0.0.0 or ::")
	verbose := fs.Bool("v", false, "debug logs")
	fs.Usage = func() {
		fmt.Fprintln(stderr, "usage: pvesim [flags]\n\nA simulated Proxmox VE host: fake API, SSH jump host and simulated Ubuntu guests.\n\nflags:")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "pvesim: unexpected arguments %q\n", fs.Args())
		return 2
	}
	level := slog.LevelInfo
	if *verbose {
		level = slog.LevelDebug
	}
	log := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: level}))
	for _, a := range []string{*listen, *sshListen} {
		if !isLoopback(a) {
			log.Warn("listening on a non-loopback address; anyone who can reach it can use the simulator", "addr", a)
		}
	}

	// A FROM-scratch image has no /tmp: keep temporary files under the state dir.
	if _, err := os.Stat(os.TempDir()); err != nil && *stateDir != "" {
		tmp := filepath.Join(*stateDir, "tmp")
		if err := os.MkdirAll(tmp, 0o700); err != nil {
			fmt.Fprintf(stderr, "pvesim: %v\n", err)
			return 1
		}
		os.Setenv("TMPDIR", tmp)
	}

	startCtx, cancel := context.WithTimeout(ctx, 30*time.Second)
	s, err := sim.Start(startCtx, sim.Options{
		APIListen:        *listen,
		SSHListen:        *sshListen,
		AllowNonLoopback: true,
		AdvertiseHost:    *advertise,
		StateDir:         *stateDir,
		TimeScale:        *timeScale,
		TopologyFile:     *topology,
		AuthDelay:        *authDelay,
		PVEVersion:       *pveVersion,
		Logger:           log,
	})
	cancel()
	if err != nil {
		fmt.Fprintf(stderr, "pvesim: %v\n", err)
		return 1
	}
	e := s.Info()
	fmt.Fprintf(stdout, "pvesim: ready api=%s fingerprint=%s jump=%s env=%s\n", e.APIURL, e.Fingerprint, e.JumpHost(), e.EnvFile)
	if f, ok := stdout.(*os.File); ok {
		_ = f.Sync()
	}
	fmt.Fprintf(stderr, "pvesim: to point aimachine at this simulator, paste into another shell:\n  source %s\n  export AIMACHINE_CATALOG=YOUR-CATALOG.yml  # its VMs' cloud-init key must be %s.pub\n", e.EnvFile, e.SSHKeyFile)
	<-ctx.Done()
	log.Info("stopping")
	if err := s.Close(); err != nil {
		fmt.Fprintf(stderr, "pvesim: stop: %v\n", err)
		return 1
	}
	return 0
}

func isLoopback(addr string) bool {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return false
	}
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}
