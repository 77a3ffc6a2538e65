package readiness

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strings"

	"github.com/aimachine/aimachine/catalog"
	"github.com/aimachine/aimachine/provision"
	"github.com/aimachine/aimachine/provision/guest"
	"github.com/aimachine/aimachine/provision/pve"
)

// VendorSnippet is the vendor snippet prepare installs for image.vendor_data: it installs and
// starts qemu-guest-agent, which the noble cloud image lacks (the same text as
// catalog/testdata/aimachine-vendor.yaml).
const VendorSnippet = `#cloud-config
# Example cloud-init vendor snippet for image.vendor_data (local:snippets/aimachine-vendor.yaml).
# The Ubuntu noble cloud image ships without qemu-guest-agent, so Proxmox's agent calls
# (IP discovery, fsfreeze, clean shutdown) never answer until it is installed.
# Copy to /var/lib/vz/snippets/aimachine-vendor.yaml on the node (the "local" storage needs
# the "snippets" content type enabled).
packages:
  - qemu-guest-agent
runcmd:
  - systemctl enable --now qemu-guest-agent
`

// Action kinds.
const (
	ActionDownload = "download"
	ActionMapping  = "mapping"
	ActionSnippet  = "snippet"
)

// Action is one host step.
type Action struct {
	Kind string `json:"kind"`
	VM   string `json:"vm"`
	Node string `json:"node"`
	// Description is the line shown before asking.
	Description string `json:"description"`

	Download *pve.Download   `json:"download,omitempty"`
	Storage  string          `json:"storage,omitempty"`
	Mapping  *pve.PCIMapping `json:"mapping,omitempty"`
	Snippet  *Snippet        `json:"snippet,omitempty"`
}

// Snippet is a vendor snippet to put on a node: the API cannot upload snippets.
type Snippet struct {
	VolID   string `json:"volid"`
	Storage string `json:"storage"`
	// Path is the file on the node ("" when only `pvesm path` on the node knows it).
	Path    string `json:"path,omitempty"`
	Content string `json:"content"`
	// EnableContent is the storage's content list with snippets added, when it lacks them.
	EnableContent []string `json:"enable_content,omitempty"`
}

// Commands is the shell text that installs the snippet, run as root on the node.
func (s *Snippet) Commands() string {
	var b strings.Builder
	if len(s.EnableContent) > 0 {
		fmt.Fprintf(&b, "pvesm set %s --content %s\n", s.Storage, strings.Join(s.EnableContent, ","))
	}
	path := s.Path
	if path == "" {
		fmt.Fprintf(&b, "f=$(pvesm path %s)\n", s.VolID)
		path = `"$f"`
	}
	fmt.Fprintf(&b, "mkdir -p \"$(dirname %s)\"\ncat > %s <<'AIMACHINE_EOF'\n%sAIMACHINE_EOF\n", path, path, s.Content)
	return b.String()
}

// NodeSSH says how to reach a node's sshd to write snippets; its host key must already be
// pinned in KnownHostsFile (nothing is trusted on first use).
type NodeSSH struct {
	Target         string // USER@HOST[:PORT]
	KeyFile        string // "" = ssh-agent
	KnownHostsFile string
	LoopbackOnly   bool // simulator mode
}

// PrepareOptions tune Prepare.
type PrepareOptions struct {
	// Confirm is asked with the planned actions; false stops before any change (nil = yes).
	Confirm func([]Action) bool
	// Progress gets the download task's log lines.
	Progress func(a Action, line string)
	// SSH writes snippets on the node (nil: they are returned for the operator).
	SSH *NodeSSH
}

// PrepareResult is what Prepare planned and did.
type PrepareResult struct {
	Actions []Action `json:"actions"`
	Done    []Action `json:"done"`
	// Manual are the snippets the operator installs (no SSH given).
	Manual []Snippet `json:"manual,omitempty"`
	// Declined: Confirm said no; nothing changed.
	Declined bool `json:"declined,omitempty"`
}

// ErrDeclined is returned when the plan was not confirmed.
var ErrDeclined = errors.New("not confirmed: nothing changed")

// Prepare plans and does the host steps of vms: download the cloud image (pinned URL and
// SHA-256, verified by Proxmox), create the GPU's PCI mapping, and install the vendor snippet
// over SSH (opts.SSH) or return it for the operator. What is already there is left alone, so a
// second run changes nothing.
func Prepare(ctx context.Context, o provision.ConnOptions, cat *catalog.Catalog, vms []*catalog.VM, opts PrepareOptions) (*PrepareResult, error) {
	h, err := dial(ctx, o)
	if err != nil {
		return nil, err
	}
	res := &PrepareResult{}
	if res.Actions, err = plan(ctx, h, vms); err != nil {
		return res, err
	}
	if len(res.Actions) == 0 {
		return res, nil
	}
	if opts.Confirm != nil && !opts.Confirm(res.Actions) {
		res.Declined = true
		return res, ErrDeclined
	}
	for _, a := range res.Actions {
		switch a.Kind {
		case ActionDownload:
			progress := func(string) {}
			if opts.Progress != nil {
				progress = func(l string) { opts.Progress(a, l) }
			}
			tr, err := h.api.DownloadURL(ctx, a.Node, a.Storage, *a.Download, progress)
			if err != nil {
				hint := "check image.url and image.sha256 in the catalog against the release's SHA256SUMS"
				if tr != nil && strings.Contains(tr.ExitStatus, "download failed") {
					hint = "the node could not fetch " + a.Download.URL + ": check its DNS and internet access (or datacenter.cfg http_proxy)"
				}
				return res, &provision.TaskError{Phase: "prepare", Task: a.Description, Err: err, Hint: hint, Log: logTail(tr)}
			}
		case ActionMapping:
			if err := h.api.CreatePCIMapping(ctx, *a.Mapping); err != nil {
				return res, &provision.TaskError{Phase: "prepare", Task: a.Description, Err: err, Hint: "Datacenter → Resource Mappings shows the existing ones"}
			}
		case ActionSnippet:
			if opts.SSH == nil {
				res.Manual = append(res.Manual, *a.Snippet)
				continue
			}
			if err := writeSnippet(ctx, *opts.SSH, a.Snippet); err != nil {
				return res, &provision.TaskError{Phase: "prepare", Task: a.Description, Err: err,
					Hint: "the node's host key must be pinned in the known_hosts file (ssh-keyscan it and compare with the node's /etc/ssh/ssh_host_ed25519_key.pub)"}
			}
		}
		res.Done = append(res.Done, a)
	}
	return res, nil
}

func logTail(tr *pve.TaskResult) string {
	if tr == nil {
		return ""
	}
	return strings.Join(tr.LogTail, "\n")
}

// dial connects for prepare (doctor reports each connection stage as a check instead).
func dial(ctx context.Context, o provision.ConnOptions) (*host, error) {
	rep := &Report{}
	h, ok := connect(ctx, o, rep)
	if !ok {
		for _, c := range rep.Checks {
			if c.Status == Fail {
				return nil, fmt.Errorf("%s: %s (hint: %s)", c.Name, c.Detail, c.Fix)
			}
		}
		return nil, errors.New("cannot connect")
	}
	return h, nil
}

// plan lists the host steps still to do.
func plan(ctx context.Context, h *host, vms []*catalog.VM) ([]Action, error) {
	var out []Action
	seen := map[string]bool{}
	storages := map[string][]pve.StorageInfo{}
	nodeStorages := func(node string) ([]pve.StorageInfo, error) {
		if s, ok := storages[node]; ok {
			return s, nil
		}
		s, err := h.api.Storages(ctx, node)
		storages[node] = s
		return s, err
	}
	var mappings []pve.PCIMapping
	mappingsRead := false
	for _, vm := range vms {
		ss, err := nodeStorages(vm.Node)
		if err != nil {
			return out, fmt.Errorf("list the storages of node %s: %w", vm.Node, err)
		}
		if img := vm.Image.CloudImage; img != "" && !seen[vm.Node+" "+img] {
			seen[vm.Node+" "+img] = true
			storage, rest, _ := strings.Cut(img, ":")
			dir, file, _ := strings.Cut(rest, "/")
			vols, err := h.api.StorageContent(ctx, vm.Node, storage)
			if err != nil {
				return out, fmt.Errorf("list %s on node %s: %w", storage, vm.Node, err)
			}
			if !hasVolume(vols, img) {
				st, ok := findStorage(ss, storage)
				switch {
				case !ok || !st.HasContent(dir):
					return out, fmt.Errorf("storage %s on node %s has no %s content type: enable it first (aimachine doctor --vm %s names the command)", storage, vm.Node, dir, vm.Name)
				case dir == "import" && !reImportName.MatchString(file):
					return out, fmt.Errorf("%s: an import storage takes only .ova/.qcow2/.raw/.vmdk file names (rename cloud_image to %s:import/%s.qcow2)", img, storage, strings.TrimSuffix(file, ".img"))
				case dir == "import" && !h.atLeast(8, 4):
					return out, fmt.Errorf("PVE %s cannot download a disk image into import storage (libpve-storage-perl 8.3.6, PVE 8.4, added it): download it on the node by hand (aimachine doctor names the command)", h.version)
				case vm.Image.URL == "" || vm.Image.SHA256 == "":
					return out, fmt.Errorf("%s: the catalog gives no image.url and image.sha256 to download it from", vm.Name)
				}
				out = append(out, Action{Kind: ActionDownload, VM: vm.Name, Node: vm.Node, Storage: storage,
					Description: fmt.Sprintf("download %s into %s on node %s (sha256 %s)", vm.Image.URL, img, vm.Node, vm.Image.SHA256),
					Download:    &pve.Download{URL: vm.Image.URL, Content: dir, Filename: file, SHA256: strings.ToLower(vm.Image.SHA256)}})
			}
		}
		if vm.GPUEnabled() && vm.GPU.Mapping != "" && !seen["mapping "+vm.GPU.Mapping] {
			seen["mapping "+vm.GPU.Mapping] = true
			if !mappingsRead {
				if mappings, err = h.api.PCIMappings(ctx); err != nil {
					return out, fmt.Errorf("list the PCI mappings: %w", err)
				}
				mappingsRead = true
			}
			exists := false
			for _, m := range mappings {
				exists = exists || m.ID == vm.GPU.Mapping
			}
			if !exists {
				devs, err := h.api.PCIDevices(ctx, vm.Node)
				if err != nil {
					return out, fmt.Errorf("list the PCI devices of node %s: %w", vm.Node, err)
				}
				e, err := MappingFor(vm, devs)
				if err != nil {
					return out, fmt.Errorf("PCI mapping %s: %w", vm.GPU.Mapping, err)
				}
				m := pve.PCIMapping{ID: vm.GPU.Mapping, Description: "aimachine: " + vm.GPU.Expect.Model, Map: []pve.PCIMappingEntry{e}}
				if vm.GPU.Expect.Model == "" {
					m.Description = "aimachine"
				}
				out = append(out, Action{Kind: ActionMapping, VM: vm.Name, Node: vm.Node, Mapping: &m,
					Description: fmt.Sprintf("create PCI mapping %s: node %s, %s (%s)", m.ID, e.Node, e.Path, e.ID)})
			}
		}
		if sn := vm.Image.VendorData; sn != "" && !seen[vm.Node+" "+sn] {
			seen[vm.Node+" "+sn] = true
			storage, rest, _ := strings.Cut(sn, ":")
			st, ok := findStorage(ss, storage)
			if !ok {
				return out, fmt.Errorf("storage %s is not on node %s (vendor_data %s)", storage, vm.Node, sn)
			}
			present := false
			if st.HasContent("snippets") {
				vols, err := h.api.StorageContent(ctx, vm.Node, storage)
				if err != nil {
					return out, fmt.Errorf("list %s on node %s: %w", storage, vm.Node, err)
				}
				present = hasVolume(vols, sn)
			}
			if !present {
				s := &Snippet{VolID: sn, Storage: storage, Content: VendorSnippet}
				if !st.HasContent("snippets") {
					s.EnableContent = append(append([]string(nil), st.Content...), "snippets")
				}
				if storage == "local" {
					s.Path = "/var/lib/vz/" + rest
				}
				out = append(out, Action{Kind: ActionSnippet, VM: vm.Name, Node: vm.Node, Snippet: s,
					Description: fmt.Sprintf("put the vendor snippet %s on node %s (the API cannot: over SSH, or by hand)", sn, vm.Node)})
			}
		}
	}
	return out, nil
}

// writeSnippet installs a snippet over SSH as the node's root.
func writeSnippet(ctx context.Context, o NodeSSH, s *Snippet) error {
	user, addr, ok := strings.Cut(o.Target, "@")
	if !ok || user == "" || addr == "" {
		return fmt.Errorf("--node-ssh %q: want USER@NODE[:PORT]", o.Target)
	}
	if _, _, err := net.SplitHostPort(addr); err != nil {
		addr = net.JoinHostPort(addr, "22")
	}
	r, err := guest.Dial(ctx, guest.Config{Addr: addr, User: user, KeyFile: o.KeyFile, KnownHostsFile: o.KnownHostsFile, LoopbackOnly: o.LoopbackOnly})
	if err != nil {
		return err
	}
	defer r.Close()
	if len(s.EnableContent) > 0 {
		cmd := fmt.Sprintf("pvesm set %s --content %s", guest.Quote(s.Storage), guest.Quote(strings.Join(s.EnableContent, ",")))
		res, err := r.Run(ctx, cmd)
		if err != nil {
			return err
		}
		// pvesm exits 0 when it drops a content type the storage's plugin does not support,
		// warning "storage does not support content type 'X'" (pve-storage Plugin.pm
		// decode_value): the snippet would then land where Proxmox does not look.
		if w := strings.TrimSpace(res.Stderr); strings.Contains(w, "does not support content type") {
			return fmt.Errorf("pvesm set %s --content %s: %s (hint: snippets need a file-based storage — dir, nfs, cifs, cephfs or btrfs, such as local; name one in the catalog's vendor_data volume)",
				s.Storage, strings.Join(s.EnableContent, ","), w)
		}
	}
	path := s.Path
	if path == "" {
		res, err := r.Run(ctx, "pvesm path "+guest.Quote(s.VolID))
		if err != nil {
			return err
		}
		path = strings.TrimSpace(res.Stdout)
	}
	return r.Put(ctx, path, 0o644, []byte(s.Content))
}
