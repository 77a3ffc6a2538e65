package container

import (
	"bytes"
	"context"
	_ "embed"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"time"

	dcontainer "github.com/moby/moby/api/types/container"
	dnetwork "github.com/moby/moby/api/types/network"
	"github.com/moby/moby/client"
	"github.com/testcontainers/testcontainers-go"
	tclog "github.com/testcontainers/testcontainers-go/log"
	"github.com/testcontainers/testcontainers-go/wait"
	"golang.org/x/crypto/ssh"
	"golang.org/x/crypto/ssh/knownhosts"

	"github.com/aimachine/aimachine/fakes/sim"
	"github.com/aimachine/aimachine/fakes/simclient"
)

// Image is the fixed tag of the simulator image; it is kept between runs (FROM scratch, no pull).
const Image = "aimachine-pvesim:test"

// Label marks every container this package starts ("aimachine.test=1"), for a cleanup sweep:
//
//	docker ps -aq --filter label=aimachine.test | xargs -r docker rm -f
const Label = "aimachine.test"

// Ports inside the container.
const (
	apiPort  = "8006/tcp"
	jumpPort = "2222/tcp"
	stateDir = "/state"
)

//go:embed Dockerfile
var dockerfile []byte

// Options configure a simulator container.
type Options struct {
	// TimeScale multiplies simulated durations (0 = instant, 1 = real time).
	TimeScale float64
	// AuthDelay delays 401 answers as pveproxy does (real: 3s). Zero for none.
	AuthDelay time.Duration
	// TopologyFile is a YAML or JSON topology copied into the container ("" = the default host).
	TopologyFile string
	// StateDir is the host directory the env file, CA and keys are copied into; "" makes a
	// temporary one that Close removes.
	StateDir string
	// Labels are added to the container's labels (Label=1 is always set).
	Labels map[string]string
	// Log, when set, receives the container's log (pvesim's stderr and stdout).
	Log io.Writer
	// Verbose keeps testcontainers' own banner and progress lines ("🐳 Creating container …")
	// on stderr; without it they are dropped (go test -v and the tools' -v set it).
	Verbose bool
}

// verboseRun reports a run that asked for detail: go test -v (-test.v=true), or
// AIMACHINE_VERBOSE=1.
func verboseRun() bool {
	if os.Getenv("AIMACHINE_VERBOSE") == "1" {
		return true
	}
	for _, a := range os.Args[1:] {
		if a == "-test.v" || a == "-test.v=true" || a == "-test.v=test2json" {
			return true
		}
	}
	return false
}

// quietTestcontainers drops testcontainers' default logger unless verbose. It is process-wide
// and set before testcontainers first logs.
func quietTestcontainers(verbose bool) {
	if !verbose && !verboseRun() {
		tclog.SetDefault(tclog.NewNoopLogger())
	}
}

// Sim is a running simulator container. The embedded Endpoint's addresses are the ports
// published on 127.0.0.1.
type Sim struct {
	sim.Endpoint
	ctr     *testcontainers.DockerContainer
	control *simclient.Client
	ownDir  bool
}

var _ sim.Target = (*Sim)(nil)

// Start builds the image if this process has not yet, runs a container and waits for
// "pvesim: ready". On error the container, if any, is already terminated.
func Start(ctx context.Context, o Options) (*Sim, error) {
	setTestcontainersEnv()
	quietTestcontainers(o.Verbose)
	if err := DockerAvailable(ctx); err != nil {
		return nil, err
	}
	img, err := BuildImage(ctx)
	if err != nil {
		return nil, err
	}
	args := []string{
		"--time-scale", strconv.FormatFloat(o.TimeScale, 'g', -1, 64),
		"--auth-delay", o.AuthDelay.String(),
	}
	labels := map[string]string{Label: "1", "aimachine.component": "pvesim"}
	for k, v := range o.Labels {
		labels[k] = v
	}
	loopback := netip.MustParseAddr("127.0.0.1")
	opts := []testcontainers.ContainerCustomizer{
		testcontainers.WithExposedPorts(apiPort, jumpPort),
		testcontainers.WithHostConfigModifier(func(hc *dcontainer.HostConfig) {
			hc.PortBindings = dnetwork.PortMap{
				dnetwork.MustParsePort(apiPort):  {{HostIP: loopback}},
				dnetwork.MustParsePort(jumpPort): {{HostIP: loopback}},
			}
		}),
		testcontainers.WithLabels(labels),
		testcontainers.WithWaitStrategy(wait.ForLog("pvesim: ready").WithStartupTimeout(60 * time.Second)),
	}
	if o.TopologyFile != "" {
		if _, err := os.Stat(o.TopologyFile); err != nil {
			return nil, fmt.Errorf("start simulator container: topology: %w", err)
		}
		opts = append(opts, testcontainers.WithFiles(testcontainers.ContainerFile{
			HostFilePath: o.TopologyFile, ContainerFilePath: "/topology" + filepath.Ext(o.TopologyFile), FileMode: 0o644,
		}))
		args = append(args, "--topology", "/topology"+filepath.Ext(o.TopologyFile))
	}
	if o.Log != nil {
		opts = append(opts, testcontainers.WithLogConsumers(logWriter{o.Log}))
	}
	opts = append(opts, testcontainers.WithCmdArgs(args...))

	ctr, err := testcontainers.Run(ctx, img, opts...)
	if err != nil {
		terminate(ctr)
		return nil, fmt.Errorf("start simulator container %s: %w (hint: `docker logs` the container labelled %s=1)", img, err, Label)
	}
	s := &Sim{ctr: ctr}
	if err := s.collect(ctx, o.StateDir); err != nil {
		terminate(ctr)
		if s.ownDir {
			os.RemoveAll(s.StateDir)
		}
		return nil, err
	}
	return s, nil
}

// collect copies the state files out of the container and rewrites the addresses to the
// published ports.
func (s *Sim) collect(ctx context.Context, dir string) error {
	if dir == "" {
		d, err := os.MkdirTemp("", "pvesim-container-")
		if err != nil {
			return err
		}
		dir, s.ownDir = d, true
	} else if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	s.StateDir = dir
	files := map[string]os.FileMode{
		sim.EnvFileName:              0o600,
		sim.CAFileName:               0o644,
		sim.ToolKeyFileName:          0o600,
		sim.ToolKeyFileName + ".pub": 0o644,
		sim.HostKeyFileName + ".pub": 0o644,
		sim.AuthorizedKeysName:       0o600,
	}
	for name, mode := range files {
		data, err := s.copyOut(ctx, stateDir+"/"+name)
		if err != nil {
			return err
		}
		if err := os.WriteFile(filepath.Join(dir, name), data, mode); err != nil {
			return err
		}
		if err := os.Chmod(filepath.Join(dir, name), mode); err != nil {
			return err
		}
	}
	envData, err := os.ReadFile(filepath.Join(dir, sim.EnvFileName))
	if err != nil {
		return err
	}
	vars, err := sim.ParseEnv(envData)
	if err != nil {
		return fmt.Errorf("simulator container env file: %w", err)
	}
	apiHP, err := s.hostPort(ctx, apiPort)
	if err != nil {
		return err
	}
	jumpHP, err := s.hostPort(ctx, jumpPort)
	if err != nil {
		return err
	}
	ep, err := sim.EndpointFromEnv(vars)
	if err != nil {
		return fmt.Errorf("simulator container env file: %w", err)
	}
	ep.BaseURL = "https://" + apiHP + "/"
	ep.APIURL = ep.BaseURL + "api2/json"
	ep.ControlURL = ep.BaseURL + "_sim/"
	ep.JumpAddr = jumpHP
	ep.CAFile = filepath.Join(dir, sim.CAFileName)
	ep.SSHKeyFile = filepath.Join(dir, sim.ToolKeyFileName)
	ep.KnownHostsFile = filepath.Join(dir, sim.KnownHostsFileName)
	ep.EnvFile = filepath.Join(dir, sim.EnvFileName)
	ep.StateDir = dir
	if ep.CAPEM, err = os.ReadFile(ep.CAFile); err != nil {
		return err
	}
	pub, err := os.ReadFile(ep.SSHKeyFile + ".pub")
	if err != nil {
		return err
	}
	ep.SSHPublicKey = strings.TrimSpace(string(pub))
	hk, err := os.ReadFile(filepath.Join(dir, sim.HostKeyFileName+".pub"))
	if err != nil {
		return err
	}
	hostKey, _, _, _, err := ssh.ParseAuthorizedKey(hk)
	if err != nil {
		return fmt.Errorf("simulator container host key: %w", err)
	}
	ep.JumpHostKey = strings.TrimSpace(string(ssh.MarshalAuthorizedKey(hostKey)))
	kh := knownhosts.Line([]string{knownhosts.Normalize(jumpHP)}, hostKey) + "\n"
	if err := os.WriteFile(ep.KnownHostsFile, []byte(kh), 0o644); err != nil {
		return err
	}
	// Keep any variable pvesim adds that we do not know, rewrite the ones we do.
	for k, v := range ep.Env() {
		vars[k] = v
	}
	if err := os.WriteFile(ep.EnvFile, sim.MarshalEnv(vars), 0o600); err != nil {
		return err
	}
	s.Endpoint = ep
	s.control, err = simclient.New(ep.ControlURL, ep.CAPEM)
	return err
}

func (s *Sim) copyOut(ctx context.Context, path string) ([]byte, error) {
	rc, err := s.ctr.CopyFileFromContainer(ctx, path)
	if err != nil {
		return nil, fmt.Errorf("copy %s out of the simulator container: %w", path, err)
	}
	defer rc.Close()
	return io.ReadAll(rc)
}

func (s *Sim) hostPort(ctx context.Context, port string) (string, error) {
	p, err := s.ctr.MappedPort(ctx, port)
	if err != nil {
		return "", fmt.Errorf("simulator container port %s: %w", port, err)
	}
	return net.JoinHostPort("127.0.0.1", p.Port()), nil
}

// Info returns the endpoint (the embedded Endpoint).
func (s *Sim) Info() sim.Endpoint { return s.Endpoint }

// Control returns a client of the simulator's control API.
func (s *Sim) Control() *simclient.Client { return s.control }

// Container returns the running container (for logs and inspection).
func (s *Sim) Container() *testcontainers.DockerContainer { return s.ctr }

// Logs returns what the container printed so far.
func (s *Sim) Logs(ctx context.Context) (string, error) {
	rc, err := s.ctr.Logs(ctx)
	if err != nil {
		return "", err
	}
	defer rc.Close()
	b, err := io.ReadAll(rc)
	return string(b), err
}

// Close terminates the container and removes a temporary state dir.
func (s *Sim) Close() error {
	err := testcontainers.TerminateContainer(s.ctr, testcontainers.StopTimeout(2*time.Second))
	if s.ownDir {
		err = errors.Join(err, os.RemoveAll(s.StateDir))
	}
	return err
}

func terminate(ctr *testcontainers.DockerContainer) {
	if ctr != nil {
		_ = testcontainers.TerminateContainer(ctr, testcontainers.StopTimeout(time.Second))
	}
}

// setTestcontainersEnv applies the two settings an offline, containerised run needs, unless the
// caller chose otherwise: no Ryuk (it would be pulled) and 127.0.0.1 as the container host.
func setTestcontainersEnv() {
	if _, ok := os.LookupEnv("TESTCONTAINERS_RYUK_DISABLED"); !ok {
		os.Setenv("TESTCONTAINERS_RYUK_DISABLED", "true")
	}
	if _, ok := os.LookupEnv("TESTCONTAINERS_HOST_OVERRIDE"); !ok {
		os.Setenv("TESTCONTAINERS_HOST_OVERRIDE", "127.0.0.1")
	}
}

// DockerAvailable reports whether a Docker engine answers (nil when it does).
func DockerAvailable(ctx context.Context) error {
	setTestcontainersEnv()
	quietTestcontainers(false)
	p, err := testcontainers.NewDockerProvider()
	if err != nil {
		return fmt.Errorf("docker is not available: %w (hint: start the Docker daemon or set DOCKER_HOST)", err)
	}
	defer p.Close()
	if err := p.Health(ctx); err != nil {
		return fmt.Errorf("docker is not available: %w (hint: start the Docker daemon or set DOCKER_HOST)", err)
	}
	return nil
}

var (
	buildOnce sync.Once
	buildTag  string
	buildErr  error
)

// BuildImage builds pvesim (static, linux) and the image tagged Image, once per process.
func BuildImage(ctx context.Context) (string, error) {
	buildOnce.Do(func() { buildTag, buildErr = buildImage(ctx) })
	return buildTag, buildErr
}

func buildImage(ctx context.Context) (string, error) {
	setTestcontainersEnv()
	dir, err := os.MkdirTemp("", "pvesim-image-")
	if err != nil {
		return "", err
	}
	defer os.RemoveAll(dir)
	if err := buildBinary(ctx, filepath.Join(dir, "pvesim")); err != nil {
		return "", err
	}
	if err := os.WriteFile(filepath.Join(dir, "Dockerfile"), dockerfile, 0o644); err != nil {
		return "", err
	}
	if err := os.Mkdir(filepath.Join(dir, "state"), 0o755); err != nil {
		return "", err
	}
	// An empty directory may be dropped by the build context; keep a marker in it.
	if err := os.WriteFile(filepath.Join(dir, "state", ".keep"), nil, 0o644); err != nil {
		return "", err
	}
	p, err := testcontainers.NewDockerProvider()
	if err != nil {
		return "", fmt.Errorf("build simulator image: %w", err)
	}
	defer p.Close()
	var previous string
	if img, err := p.Client().ImageInspect(ctx, Image); err == nil {
		previous = img.ID
	}
	var buildLog bytes.Buffer
	repo, tag, _ := strings.Cut(Image, ":")
	out, err := p.BuildImage(ctx, &testcontainers.ContainerRequest{FromDockerfile: testcontainers.FromDockerfile{
		Context: dir, Dockerfile: "Dockerfile", Repo: repo, Tag: tag, KeepImage: true, BuildLogWriter: &buildLog,
	}})
	if err != nil {
		return "", fmt.Errorf("build simulator image %s: %w\n%s", Image, err, tail(buildLog.String(), 2000))
	}
	// A changed binary leaves the previous image untagged: remove it unless a container uses it.
	if img, err := p.Client().ImageInspect(ctx, Image); err == nil && previous != "" && img.ID != previous {
		_, _ = p.Client().ImageRemove(ctx, previous, client.ImageRemoveOptions{PruneChildren: true})
	}
	return out, nil
}

// buildBinary compiles fakes/cmd/pvesim statically for Linux. It runs in the module root found
// from this source file (not -trimpath'ed), or the current directory.
func buildBinary(ctx context.Context, out string) error {
	cmd := exec.CommandContext(ctx, "go", "build", "-o", out, "github.com/aimachine/aimachine/fakes/cmd/pvesim")
	if _, file, _, ok := runtime.Caller(0); ok {
		root := filepath.Join(filepath.Dir(file), "..", "..")
		if _, err := os.Stat(filepath.Join(root, "go.mod")); err == nil {
			cmd.Dir = root
		}
	}
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS=linux", "GOARCH="+runtime.GOARCH)
	var outBuf bytes.Buffer
	cmd.Stdout, cmd.Stderr = &outBuf, &outBuf
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("build pvesim for the simulator image: %w\n%s", err, tail(outBuf.String(), 4000))
	}
	return nil
}

func tail(s string, n int) string {
	if len(s) > n {
		return "..." + s[len(s)-n:]
	}
	return s
}

type logWriter struct{ w io.Writer }

func (l logWriter) Accept(log testcontainers.Log) { _, _ = l.w.Write(log.Content) }
