package steps

import (
	"context"
	"errors"
	"fmt"
	"os"
	"reflect"
	"regexp"
	"strings"

	"github.com/cucumber/godog"

	"github.com/aimachine/aimachine/catalog"
	"github.com/aimachine/aimachine/provision"
	"github.com/aimachine/aimachine/provision/pve"
	"github.com/aimachine/aimachine/provision/readiness"
)

// The bare host of features/host_readiness.feature: its topology and the token it holds.
const (
	bareHostTopology = "fakes/sim/testdata/bare-host.yaml"
	bareHostToken    = "aimachine@pve!deploy=0b7a9c1e-bare-host-test-token-secret"
	bareHostImage    = "local:import/noble-server-cloudimg-amd64.qcow2"
)

// readinessState is the host-readiness scenarios' part of the World.
type readinessState struct {
	conn      provision.ConnOptions // what doctor and prepare connect with
	doctorRep *readiness.Report
	prep      *readiness.PrepareResult
	prepErr   error
	prepLines []string
	before    *hostSnapshot
	mark      *simMark
}

func (w *World) registerReadinessSteps(sc *godog.ScenarioContext) {
	sc.Given(`^the Proxmox host that "([^"]*)" is deployed on$`, w.theHostOf)
	sc.Given(`^a bare Proxmox host: no cloud image, no snippets content, no PCI mapping and a token missing one privilege$`, w.aBareHost)
	sc.Given(`^the catalog passes the GPU of "([^"]*)" through the PCI mapping "([^"]*)"$`, w.theCatalogUsesMapping)
	sc.When(`^the administrator runs the doctor for "([^"]*)"$`, w.runsTheDoctor)
	sc.Then(`^the doctor passes$`, w.theDoctorPasses)
	sc.Then(`^every check that is not passed names its fix$`, w.everyProblemNamesItsFix)
	sc.Then(`^the doctor made no change on the host$`, w.theDoctorChangedNothing)
	sc.Then(`^the doctor fails naming the missing cloud image, vendor snippet, PCI mapping and privilege, each with its fix$`, w.theDoctorNamesTheBareHostProblems)
	sc.When(`^the administrator runs prepare for "([^"]*)" with a wrong image checksum$`, w.prepareWrongChecksum)
	sc.Then(`^prepare fails with a checksum mismatch and no image volume is left$`, w.prepareFailedCleanly)
	sc.When(`^the administrator runs prepare for "([^"]*)"$`, w.runsPrepare)
	sc.Then(`^the cloud image was downloaded with its checksum verified and the PCI mapping exists$`, w.imageAndMappingPrepared)
	sc.Then(`^prepare handed over the vendor snippet with the command to run on the node$`, w.snippetHandedOver)
	sc.When(`^the administrator runs prepare for "([^"]*)" again$`, w.runsPrepareAgain)
	sc.Then(`^prepare changed nothing on the host$`, w.prepareChangedNothing)
	sc.When(`^the administrator writes the vendor snippet over SSH and grants the privilege the doctor named$`, w.snippetAndGrant)
	sc.When(`^the administrator deploys "([^"]*)" with the token$`, w.deploysWithTheToken)
	sc.Then(`^the deployment succeeds and the verification passes$`, w.deploymentAndVerification)
}

func (w *World) readinessVMs(name string) ([]*catalog.VM, error) {
	w.vmName = name
	vm, err := w.dcat.VM(name)
	if err != nil {
		return nil, err
	}
	return []*catalog.VM{vm}, nil
}

// theHostOf: the scenario's target with the credentials of the environment (the simulator's
// root@pam, or PROXMOX_VE_* on the live target).
func (w *World) theHostOf(ctx context.Context, name string) error {
	o, err := provision.ConnOptionsFromEnv(w.t.env)
	if err != nil {
		return err
	}
	w.rd.conn = o
	w.vmName = name
	return nil
}

// aBareHost resets the simulator onto the bare-host topology and connects with its token.
func (w *World) aBareHost(ctx context.Context) error {
	if !w.t.simulated() {
		return errNoSimulator
	}
	topo, err := os.ReadFile(bareHostTopology)
	if err != nil {
		return err
	}
	if err := w.t.sim.Control().ResetTopology(ctx, topo); err != nil {
		return fmt.Errorf("reset the simulator onto the bare host: %w", err)
	}
	o, err := provision.ConnOptionsFromEnv(w.t.env)
	if err != nil {
		return err
	}
	o.Username, o.Password, o.APIToken = "", "", bareHostToken
	w.rd.conn = o
	w.secrets = append(w.secrets, secretsOf(o)...)
	c, err := provision.Connect(ctx, o)
	if err != nil {
		return err
	}
	w.client = c
	return nil
}

// theCatalogUsesMapping: an API token may not set a raw hostpci (qemu-server
// check_hostpci_perm), so the token's catalog names a mapping; the image gets the name an
// import storage lists (.qcow2).
func (w *World) theCatalogUsesMapping(ctx context.Context, name, mapping string) error {
	vm, err := w.dcat.VM(name)
	if err != nil {
		return err
	}
	if !vm.GPUEnabled() {
		return fmt.Errorf("%s has no GPU in the catalog", name)
	}
	vm.GPU.PCIAddress, vm.GPU.Mapping = "", mapping
	vm.Image.CloudImage = bareHostImage
	if vm.Image.URL == "" {
		vm.Image.URL, vm.Image.SHA256 = catalog.DefaultImageURL, catalog.DefaultImageSHA256
	}
	return nil
}

// hostSnapshot is what a read-only command must leave as it was (live target: no counters).
// (VM ids, names and nodes, not their load or status, which other VMs change on a live host.)
type hostSnapshot struct {
	VMs      []string
	Mappings []pve.PCIMapping
	Volumes  map[string][]string
}

func (w *World) snapshot(ctx context.Context, vm *catalog.VM) (*hostSnapshot, error) {
	api := w.client.API()
	s := &hostSnapshot{Volumes: map[string][]string{}}
	rs, err := api.Resources(ctx, "vm")
	if err != nil {
		return nil, err
	}
	for _, r := range rs {
		s.VMs = append(s.VMs, fmt.Sprintf("%d %s on %s", r.VMID, r.Name, r.Node))
	}
	if s.Mappings, err = api.PCIMappings(ctx); err != nil {
		return nil, err
	}
	for _, st := range []string{vm.Disk.Storage, storageOf(vm.Image.CloudImage), storageOf(vm.Image.VendorData)} {
		if st == "" {
			continue
		}
		vols, err := api.StorageContent(ctx, vm.Node, st)
		if err != nil {
			return nil, err
		}
		for _, v := range vols {
			s.Volumes[st] = append(s.Volumes[st], v.VolID)
		}
	}
	return s, nil
}

func storageOf(volid string) string {
	s, _, _ := strings.Cut(volid, ":")
	return s
}

func (w *World) markNow(ctx context.Context) error {
	if !w.t.simulated() {
		return nil
	}
	st, err := w.t.sim.Control().Stats(ctx)
	if err != nil {
		return err
	}
	w.rd.mark = &simMark{mutating: st.API.Mutating, read: st.API.Read}
	return nil
}

func (w *World) mutatingSinceMark(ctx context.Context) (int, error) {
	st, err := w.t.sim.Control().Stats(ctx)
	if err != nil {
		return 0, err
	}
	return st.API.Mutating - w.rd.mark.mutating, nil
}

func (w *World) runsTheDoctor(ctx context.Context, name string) error {
	vms, err := w.readinessVMs(name)
	if err != nil {
		return err
	}
	if w.rd.before, err = w.snapshot(ctx, vms[0]); err != nil {
		return err
	}
	if err := w.markNow(ctx); err != nil {
		return err
	}
	rep, err := readiness.Doctor(ctx, w.rd.conn, w.dcat, vms)
	if err != nil {
		return err
	}
	w.rd.doctorRep = rep
	for _, c := range rep.Checks {
		w.logf("doctor %s %s: %s | fix: %s", c.Status.Mark(), c.Name, c.Detail, c.Fix)
	}
	return nil
}

func (w *World) theDoctorPasses() error {
	if w.rd.doctorRep == nil {
		return errors.New("the doctor did not run")
	}
	if f := w.rd.doctorRep.Failed(); len(f) > 0 {
		var lines []string
		for _, c := range f {
			lines = append(lines, fmt.Sprintf("✗ %s: %s (fix: %s)", c.Name, c.Detail, c.Fix))
		}
		return fmt.Errorf("the doctor found %d problems:\n%s", len(f), strings.Join(lines, "\n"))
	}
	if len(w.rd.doctorRep.Checks) < 10 {
		return fmt.Errorf("the doctor ran only %d checks", len(w.rd.doctorRep.Checks))
	}
	return nil
}

func (w *World) everyProblemNamesItsFix() error {
	for _, c := range w.rd.doctorRep.Checks {
		if c.Status != readiness.OK && strings.TrimSpace(c.Fix) == "" {
			return fmt.Errorf("%s %s has no fix", c.Status.Mark(), c.Name)
		}
	}
	return nil
}

func (w *World) theDoctorChangedNothing(ctx context.Context) error {
	if w.t.simulated() {
		n, err := w.mutatingSinceMark(ctx)
		if err != nil {
			return err
		}
		if n != 0 {
			return fmt.Errorf("the doctor made %d mutating API calls", n)
		}
	}
	vm, err := w.dcat.VM(w.vmName)
	if err != nil {
		return err
	}
	after, err := w.snapshot(ctx, vm)
	if err != nil {
		return err
	}
	if !reflect.DeepEqual(w.rd.before, after) {
		return fmt.Errorf("the host changed during the doctor:\nbefore %+v\nafter  %+v", w.rd.before, after)
	}
	return nil
}

func (w *World) theDoctorNamesTheBareHostProblems() error {
	rep := w.rd.doctorRep
	if rep == nil || rep.OK() {
		return errors.New("the doctor passed on the bare host")
	}
	want := map[string]func(readiness.Check) bool{
		"the missing cloud image": func(c readiness.Check) bool {
			return c.Kind == readiness.KindImage && strings.Contains(c.Fix, catalog.DefaultImageSHA256) && c.Prepare
		},
		"the vendor snippet": func(c readiness.Check) bool {
			return c.Kind == readiness.KindSnippet && strings.Contains(c.Fix, "aimachine prepare")
		},
		"the snippets content type": func(c readiness.Check) bool {
			return c.Kind == readiness.KindStorage && strings.Contains(c.Fix, "pvesm set local --content") && strings.Contains(c.Fix, "snippets")
		},
		"the PCI mapping": func(c readiness.Check) bool {
			return c.Kind == readiness.KindMapping && strings.Contains(c.Fix, "pvesh create /cluster/mapping/pci --id rtx5060ti --map node=pve,path=0000:01:00,id=10de:2d04")
		},
		"the privilege": func(c readiness.Check) bool {
			return c.Kind == readiness.KindPrivilege && c.Privilege == "SDN.Use" && c.Path == "/sdn/zones/localnetwork/vmbr0" && strings.HasPrefix(c.Fix, "pveum acl modify")
		},
	}
	for what, match := range want {
		found := false
		for _, c := range rep.Failed() {
			found = found || match(c)
		}
		if !found {
			return fmt.Errorf("the doctor did not name %s with its fix; failed checks: %v", what, failedSummary(rep))
		}
	}
	if n := len(rep.Failed()); n != len(want) {
		return fmt.Errorf("the doctor failed %d checks, the bare host has %d problems: %v", n, len(want), failedSummary(rep))
	}
	return nil
}

func failedSummary(rep *readiness.Report) []string {
	var out []string
	for _, c := range rep.Failed() {
		out = append(out, c.Name)
	}
	return out
}

func (w *World) prepare(ctx context.Context, name string, cat *catalog.Catalog, ssh *readiness.NodeSSH) error {
	vm, err := cat.VM(name)
	if err != nil {
		return err
	}
	if err := w.markNow(ctx); err != nil {
		return err
	}
	w.rd.prepLines = nil
	w.rd.prep, w.rd.prepErr = readiness.Prepare(ctx, w.rd.conn, cat, []*catalog.VM{vm}, readiness.PrepareOptions{
		Progress: func(a readiness.Action, l string) {
			w.rd.prepLines = append(w.rd.prepLines, l)
			w.logf("prepare … %s", l)
		},
		SSH: ssh,
	})
	if w.rd.prep != nil {
		for _, a := range w.rd.prep.Done {
			w.logf("prepare ✓ %s", a.Description)
		}
	}
	if w.rd.prepErr != nil {
		w.logf("prepare: %v", w.rd.prepErr)
	}
	return nil
}

func (w *World) prepareWrongChecksum(ctx context.Context, name string) error {
	bad := *w.dcat
	bad.VMs = append([]catalog.VM(nil), w.dcat.VMs...)
	for i := range bad.VMs {
		if bad.VMs[i].Name == name {
			bad.VMs[i].Image.SHA256 = strings.Repeat("0", 64)
		}
	}
	return w.prepare(ctx, name, &bad, nil)
}

func (w *World) imageVolumes(ctx context.Context) ([]string, error) {
	vols, err := w.client.API().StorageContent(ctx, "pve", "local")
	if err != nil {
		return nil, err
	}
	var out []string
	for _, v := range vols {
		if v.VolID == bareHostImage {
			out = append(out, v.VolID)
		}
	}
	return out, nil
}

func (w *World) prepareFailedCleanly(ctx context.Context) error {
	if w.rd.prepErr == nil || !strings.Contains(w.rd.prepErr.Error(), "checksum mismatch: got '"+catalog.DefaultImageSHA256+"' != expect '"+strings.Repeat("0", 64)+"'") {
		return fmt.Errorf("prepare with a wrong checksum: %v", w.rd.prepErr)
	}
	if vols, err := w.imageVolumes(ctx); err != nil || len(vols) > 0 {
		return fmt.Errorf("after the failed download: volumes %v, %v", vols, err)
	}
	return nil
}

func (w *World) runsPrepare(ctx context.Context, name string) error {
	return w.prepare(ctx, name, w.dcat, nil)
}

func (w *World) imageAndMappingPrepared(ctx context.Context) error {
	if w.rd.prepErr != nil {
		return w.rd.prepErr
	}
	if !strings.Contains(strings.Join(w.rd.prepLines, "\n"), "calculating checksum...OK, checksum verified") {
		return fmt.Errorf("the download task's log did not verify the checksum: %v", w.rd.prepLines)
	}
	if vols, err := w.imageVolumes(ctx); err != nil || len(vols) != 1 {
		return fmt.Errorf("image volume after prepare: %v, %v", vols, err)
	}
	ms, err := w.client.API().PCIMappings(ctx)
	if err != nil {
		return err
	}
	for _, m := range ms {
		if m.ID == "rtx5060ti" && len(m.Map) == 1 && m.Map[0].Node == "pve" && m.Map[0].Path == "0000:01:00" && m.Map[0].ID == "10de:2d04" {
			return nil
		}
	}
	return fmt.Errorf("no mapping rtx5060ti for node pve, 0000:01:00, 10de:2d04: %+v", ms)
}

func (w *World) snippetHandedOver() error {
	if len(w.rd.prep.Manual) != 1 {
		return fmt.Errorf("prepare handed over %d snippets", len(w.rd.prep.Manual))
	}
	cmds := w.rd.prep.Manual[0].Commands()
	for _, want := range []string{"pvesm set local --content iso,vztmpl,backup,import,snippets", "cat > /var/lib/vz/snippets/aimachine-vendor.yaml", "qemu-guest-agent"} {
		if !strings.Contains(cmds, want) {
			return fmt.Errorf("the snippet commands lack %q:\n%s", want, cmds)
		}
	}
	return nil
}

func (w *World) runsPrepareAgain(ctx context.Context, name string) error {
	return w.prepare(ctx, name, w.dcat, nil)
}

func (w *World) prepareChangedNothing(ctx context.Context) error {
	if w.rd.prepErr != nil {
		return w.rd.prepErr
	}
	for _, a := range w.rd.prep.Actions {
		if a.Kind != readiness.ActionSnippet {
			return fmt.Errorf("the second prepare planned %q", a.Description)
		}
	}
	n, err := w.mutatingSinceMark(ctx)
	if err != nil {
		return err
	}
	if n != 0 {
		return fmt.Errorf("the second prepare made %d mutating API calls", n)
	}
	return nil
}

var reGrant = regexp.MustCompile(`pveum acl modify (\S+) --roles (\S+) --tokens '([^']+)'`)

// snippetAndGrant: prepare --node-ssh writes the snippet through the node's sshd (the
// simulator's host key is pinned in its known_hosts); the administrator runs the doctor's
// pveum command (on the simulator: its ACL control).
func (w *World) snippetAndGrant(ctx context.Context) error {
	e := w.t.endpoint()
	if err := w.prepare(ctx, w.vmName, w.dcat, &readiness.NodeSSH{Target: e.JumpHost(), KeyFile: e.SSHKeyFile, KnownHostsFile: e.KnownHostsFile, LoopbackOnly: true}); err != nil {
		return err
	}
	if w.rd.prepErr != nil {
		return w.rd.prepErr
	}
	granted := 0
	for _, c := range w.rd.doctorRep.Failed() {
		if c.Kind != readiness.KindPrivilege {
			continue
		}
		m := reGrant.FindStringSubmatch(c.Fix)
		if m == nil {
			return fmt.Errorf("the fix of %q is not a pveum grant: %s", c.Name, c.Fix)
		}
		if err := w.t.sim.Control().GrantACL(ctx, m[1], m[3], m[2], false); err != nil {
			return fmt.Errorf("%s: %w", m[0], err)
		}
		granted++
	}
	if granted == 0 {
		return errors.New("the doctor named no privilege to grant")
	}
	return nil
}

func (w *World) deploysWithTheToken(ctx context.Context, name string) error {
	w.vmName = name
	if !w.client.API().Identity().Token {
		return errors.New("the scenario's client is not the token")
	}
	return w.deploy(ctx, provision.DeployOptions{})
}

func (w *World) deploymentAndVerification(ctx context.Context) error {
	if w.deployErr != nil {
		return w.deployErr
	}
	return w.verifyPasses(ctx)
}
