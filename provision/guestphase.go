package provision

import (
	"context"
	"errors"

	"github.com/aimachine/aimachine/catalog"
	"github.com/aimachine/aimachine/provision/guest"
)

// GuestOptions tune the guest phase.
type GuestOptions struct {
	Reporter Reporter
	// ReportDir is where a failed run writes its log bundle (reports/<vm>-<run>/).
	ReportDir string
	RunID     string
}

// ErrGuestPhaseNotImplemented is returned until the guest phase lands.
var ErrGuestPhaseNotImplemented = errors.New("guest phase not implemented yet")

// RunGuestPhase turns a reachable Ubuntu 24.04 machine into the catalog VM's LLM server:
// open NVIDIA driver, CUDA, GPU proof, vLLM, Ollama. Idempotent.
func RunGuestPhase(ctx context.Context, r guest.Runner, c *catalog.Catalog, vm *catalog.VM, opts GuestOptions) (Summary, error) {
	return Summary{}, ErrGuestPhaseNotImplemented
}
