package pve

// clientNeed is an API operation a real client of a PVE host calls in the flows this project cares
// about (log in, read a VM, create one with a mapped GPU, change it, start, stop, delete), with the
// place in the client's source that calls it. PARITY.md lists them against the fake's coverage.
type clientNeed struct {
	client string // "telmate", "webui"
	op     string // "METHOD /schema/path"
	src    string
}

// Client names as PARITY.md shows them.
var clientNames = map[string]string{
	"telmate": "Telmate proxmox-api-go",
	"webui":   "web UI",
}

var clientNeeds = []clientNeed{
	// github.com/Telmate/proxmox-api-go (the telmate Terraform provider's client), read at 98ffd4b
	{"telmate", "POST /access/ticket", "proxmox/session.go (*Session).Login"},
	{"telmate", "GET /version", "proxmox/client.go (*Client).GetVersion"},
	{"telmate", "GET /cluster/resources", "proxmox/client.go GetVmList / CheckVmRef / GetVmInfo"},
	{"telmate", "GET /cluster/nextid", "proxmox/client.go (*Client).GetNextID"},
	{"telmate", "GET /nodes/{node}/qemu/{vmid}/config", "proxmox/client.go (*Client).GetVmConfig"},
	{"telmate", "GET /nodes/{node}/qemu/{vmid}/pending", "proxmox/client__api.go (pending config)"},
	{"telmate", "GET /nodes/{node}/qemu/{vmid}/status/current", "proxmox/client.go (*Client).GetVmState"},
	{"telmate", "POST /nodes/{node}/qemu", "proxmox/client.go (*Client).CreateQemuVm"},
	{"telmate", "POST /nodes/{node}/qemu/{vmid}/config", "proxmox/client.go (PostWithTask …/config)"},
	{"telmate", "PUT /nodes/{node}/qemu/{vmid}/resize", "proxmox/client.go (…/resize)"},
	{"telmate", "POST /nodes/{node}/qemu/{vmid}/status/start", "proxmox/client.go (*Client).StartVm"},
	{"telmate", "POST /nodes/{node}/qemu/{vmid}/status/stop", "proxmox/client.go (*Client).StopVm"},
	{"telmate", "DELETE /nodes/{node}/qemu/{vmid}", "proxmox/client.go (*Client).DeleteVm"},
	{"telmate", "GET /nodes/{node}/tasks/{upid}/status", "proxmox/client.go (*Client).GetTaskExitstatus"},
	// proxmox/pve-manager www/manager6 (the web UI), read at 14a22df3
	{"webui", "POST /access/ticket", "proxmox-widget-toolkit window/LoginWindow.js"},
	{"webui", "GET /version", "www/manager6/Workspace.js"},
	{"webui", "GET /cluster/resources", "www/manager6/data/ResourceStore.js"},
	{"webui", "GET /cluster/status", "www/manager6/Utils.js"},
	{"webui", "GET /cluster/nextid", "www/manager6/form/GuestIDSelector.js"},
	{"webui", "GET /cluster/mapping/pci", "www/manager6/form/PCIMapSelector.js"},
	{"webui", "GET /nodes/{node}/hardware/pci", "www/manager6/form/PCISelector.js"},
	{"webui", "GET /nodes/{node}/network", "www/manager6/form/BridgeSelector.js"},
	{"webui", "GET /nodes/{node}/storage", "www/manager6/form/StorageSelector.js"},
	{"webui", "GET /nodes/{node}/storage/{storage}/content", "www/manager6/form/FileSelector.js"},
	{"webui", "POST /nodes/{node}/qemu", "www/manager6/qemu/CreateWizard.js"},
	{"webui", "GET /nodes/{node}/qemu/{vmid}/pending", "www/manager6/qemu/HardwareView.js"},
	{"webui", "POST /nodes/{node}/qemu/{vmid}/config", "www/manager6/qemu/HardwareView.js (method POST)"},
	{"webui", "PUT /nodes/{node}/qemu/{vmid}/config", "www/manager6/qemu/HardwareView.js, qemu/Options.js (edit windows)"},
	{"webui", "GET /nodes/{node}/qemu/{vmid}/status/current", "www/manager6/qemu/CmdMenu.js"},
	{"webui", "POST /nodes/{node}/qemu/{vmid}/status/start", "www/manager6/qemu/CmdMenu.js"},
	{"webui", "POST /nodes/{node}/qemu/{vmid}/status/stop", "www/manager6/qemu/CmdMenu.js"},
	{"webui", "POST /nodes/{node}/qemu/{vmid}/status/shutdown", "www/manager6/qemu/CmdMenu.js"},
	{"webui", "DELETE /nodes/{node}/qemu/{vmid}", "www/manager6/window/SafeDestroyGuest.js"},
	{"webui", "GET /nodes/{node}/tasks/{upid}/status", "proxmox-widget-toolkit window/TaskViewer.js"},
	{"webui", "GET /nodes/{node}/tasks/{upid}/log", "proxmox-widget-toolkit panel/LogView.js"},
}
