package container_test

// wantNoUtilsExit is nvidia-smi's exit status on a fresh cloud image: the command is missing.
const wantNoUtilsExit = 127

// installSteps install the open 580 server driver (headless, prebuilt signed modules) and
// nvidia-smi, in the order of shared/reference/guest.md §11.
var installSteps = []string{
	"sudo apt-get update",
	"sudo apt-get install -y ubuntu-drivers-common",
	"sudo ubuntu-drivers install --gpgpu nvidia:580-server-open",
	"sudo apt-get install -y nvidia-utils-580-server",
}
