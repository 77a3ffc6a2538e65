package sim_test

import (
	"crypto/ed25519"
	"crypto/rand"
	"testing"
)

// wantNoDriverExit is nvidia-smi's exit status in a guest where no NVIDIA driver is installed.
const wantNoDriverExit = 9

// installSteps install the open 580 server driver (headless, prebuilt signed modules) and
// nvidia-smi, in the order of shared/reference/guest.md §11.
var installSteps = []string{
	"sudo apt-get update",
	"sudo apt-get install -y ubuntu-drivers-common",
	"sudo ubuntu-drivers install --gpgpu nvidia:580-server-open",
	"sudo apt-get install -y nvidia-utils-580-server",
}

func mustEd25519(t *testing.T) ed25519.PrivateKey {
	t.Helper()
	_, k, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return k
}
