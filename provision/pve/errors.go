package pve

import (
	"errors"
	"fmt"
	"io"
	"net"
	"regexp"
	"strings"
	"syscall"

	"github.com/luthermonson/go-proxmox"
)

// Sentinels: match with errors.Is on anything the API returns.
var (
	ErrNotFound = errors.New("not found")
	// ErrNoNode: the path names a node the cluster does not know (pve-http-server resolves the
	// node to proxy to: "hostname lookup '<node>' failed - …").
	ErrNoNode          = errors.New("no such node")
	ErrExists          = errors.New("already exists")
	ErrLocked          = errors.New("VM is locked")
	ErrNotRunning      = errors.New("VM is not running")
	ErrAgentNotRunning = errors.New("QEMU guest agent is not running")
	ErrNoAgent         = errors.New("no QEMU guest agent configured")
	ErrRootOnlyHostPCI = errors.New("raw hostpci needs root@pam")
	ErrPCIBusy         = errors.New("PCI device in use")
	ErrPCIMissing      = errors.New("PCI device not found")
	ErrNoIOMMU         = errors.New("IOMMU not present")
	// ErrVFIOBind: the host could not hand a PCI device to vfio-pci at start (qemu-server
	// PCI.pm prepare_pci_device: "can't unbind/bind PCI group to VFIO '<id>'").
	ErrVFIOBind = errors.New("cannot bind PCI device to vfio-pci")
	// ErrStartTimeout: QEMU did not come up within vm_start's timeout (qemu-server
	// QemuServer.pm vm_start: "start failed: command '…kvm…' failed: got timeout").
	ErrStartTimeout = errors.New("QEMU start timed out")
	ErrAuth         = errors.New("authentication or permission failed")
	ErrInvalid      = errors.New("parameter verification failed")
	// ErrModified is a config write refused because the digest sent is not the config's any
	// more: another writer came first (update_vm_api's "checksum mismatch").
	ErrModified = errors.New("config changed by another writer")
	// ErrTransient is a failure worth retrying (timeouts, 502/503/504/596, connection resets, lock timeouts).
	ErrTransient = errors.New("transient API failure")
)

// APIError is a failed API call with its classification.
type APIError struct {
	// Op is what was attempted, e.g. "POST /nodes/pve/qemu".
	Op string
	// Message is PVE's text ("VM 140 already exists on node 'pve'").
	Message string
	kinds   []error
	err     error
}

func (e *APIError) Error() string { return e.Op + ": " + e.Message }

// Unwrap exposes the sentinels and the underlying error.
func (e *APIError) Unwrap() []error {
	out := append([]error(nil), e.kinds...)
	if e.err != nil {
		out = append(out, e.err)
	}
	return out
}

// TaskFailedError is a PVE task that ended with an exit status other than OK.
type TaskFailedError struct {
	Op     string
	Result TaskResult
	kinds  []error
}

func (e *TaskFailedError) Error() string {
	return fmt.Sprintf("PVE task %s failed: %s", e.Result.Type, e.Result.ExitStatus)
}

// Unwrap exposes the sentinels the exit status maps to.
func (e *TaskFailedError) Unwrap() []error { return e.kinds }

// Classed returns an error with msg as its text that matches kind with errors.Is, without
// repeating the sentinel's text.
func Classed(kind error, format string, args ...any) error {
	return &classedError{msg: fmt.Sprintf(format, args...), kind: kind}
}

type classedError struct {
	msg  string
	kind error
}

func (e *classedError) Error() string { return e.msg }
func (e *classedError) Unwrap() error { return e.kind }

// HTTPStatusError is a gateway/proxy status the transport turned into an error
// (go-proxmox would otherwise decode an empty body as success).
type HTTPStatusError struct {
	Code   int
	Status string
}

func (e *HTTPStatusError) Error() string { return "HTTP " + e.Status }

// rules map PVE error texts to sentinels; the first matching rules all apply.
var rules = []struct {
	re   *regexp.Regexp
	kind error
}{
	{regexp.MustCompile(`already in use by (running )?VMID|currently reserved for use by VMID|could not find a free device`), ErrPCIBusy},
	{regexp.MustCompile(`no PCI device found|PCI device mapping not found|PCI device mapping invalid`), ErrPCIMissing},
	{regexp.MustCompile(`IOMMU not present`), ErrNoIOMMU},
	{regexp.MustCompile(`can't unbind/bind PCI group to VFIO|Cannot find vfio-pci module`), ErrVFIOBind},
	{regexp.MustCompile(`start failed: command '\S*kvm .*' failed: got timeout`), ErrStartTimeout},
	{regexp.MustCompile(`only root can set 'hostpci\d*'|only root@pam can set`), ErrRootOnlyHostPCI},
	{regexp.MustCompile(`QEMU guest agent is not running`), ErrAgentNotRunning},
	{regexp.MustCompile(`No QEMU guest agent configured`), ErrNoAgent},
	{regexp.MustCompile(`VM \d+ is not running`), ErrNotRunning},
	{regexp.MustCompile(`already exists`), ErrExists},
	{regexp.MustCompile(`VM is locked|can't lock file`), ErrLocked},
	{regexp.MustCompile(`Configuration file '[^']*' does not exist|no such VM|does not exist`), ErrNotFound},
	{regexp.MustCompile(`hostname lookup '[^']*' failed`), ErrNoNode},
	{regexp.MustCompile(`Authentication failed|No ticket|Permission check failed|^40[13] `), ErrAuth},
	{regexp.MustCompile(`got timeout|^50[234] |^596 |connection reset|broken pipe|unexpected EOF|server closed|try again`), ErrTransient},
	{regexp.MustCompile(`Parameter verification failed`), ErrInvalid},
	{regexp.MustCompile(`checksum mismatch|detected modified configuration`), ErrModified},
}

// classifyText returns the sentinels a PVE message maps to.
func classifyText(msg string) []error {
	var kinds []error
	for _, r := range rules {
		if r.re.MatchString(msg) {
			kinds = append(kinds, r.kind)
		}
	}
	return kinds
}

// wrap turns a go-proxmox / transport error into an *APIError.
func wrap(op string, err error) error {
	if err == nil {
		return nil
	}
	var already *APIError
	if errors.As(err, &already) {
		return err
	}
	msg := err.Error()
	// go-proxmox: "500 <reason>" for 500/501; strip the code, keep the reason.
	msg = strings.TrimPrefix(msg, "500 ")
	kinds := classifyText(err.Error())
	var hs *HTTPStatusError
	switch {
	case errors.Is(err, proxmox.ErrNotAuthorized):
		kinds = append(kinds, ErrAuth)
		msg = "authentication failed or permission denied (HTTP 401/403)"
	case errors.As(err, &hs):
		kinds = append(kinds, ErrTransient)
		msg = hs.Error()
	case isNetTransient(err):
		kinds = append(kinds, ErrTransient)
	}
	return &APIError{Op: op, Message: msg, kinds: kinds, err: err}
}

func isNetTransient(err error) bool {
	if errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.EPIPE) || errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, io.EOF) {
		return true
	}
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

// IsTransient reports whether err is worth retrying: transient, not an auth, parameter or
// permission failure.
func IsTransient(err error) bool {
	return errors.Is(err, ErrTransient) && !errors.Is(err, ErrAuth) && !errors.Is(err, ErrInvalid)
}
