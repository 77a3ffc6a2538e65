// Package sim puts the fakes together into one simulated Proxmox host in this process: the
// fake PVE API (fakes/pve) over TLS, an SSH jump host that forwards only to simulated guests
// (fakes/guest) in memory, and the state dir with the env file, CA and keys a tool needs.
//
// Everything listens on loopback. Guests are never dialled: the jump host serves direct-tcpip
// (ssh -J) by handing the channel to guest.Factory.DialGuest, so a client that reaches
// 192.168.0.140:22 "through" the jump host only ever opens a TCP connection to 127.0.0.1.
// As the node's own sshd it also runs root's exec requests through a bash interpreter
// (mvdan.cc/sh, as fakes/guest does; nodeshell.go): pvesm set STORAGE --content, pvesm path
// VOLID, sh -c, cat, mkdir, chmod, rm, mv, cp, install over an in-memory file tree whose files
// in a storage's snippets directory become snippet volumes; other commands are "not found".
// download-url never leaves loopback either: it serves the topology's DownloadSources.
//
// POST /_sim/reset with {"topology": "<YAML or JSON>"} resets onto another topology (e.g.
// testdata/bare-host.yaml, the host before aimachine prepare) until the next plain reset, which
// returns to the start topology; the root@pam password and token secret stay.
//
// The state dir holds:
//
//	pvesim.env              the variables below (0600)
//	pve-root-ca.pem         the fake cluster CA that signed the API's certificate
//	id_ed25519[.pub]        the tool's SSH key pair (kept across restarts; 0600)
//	authorized_keys         keys the jump host accepts for root (re-read on every login)
//	ssh_host_ed25519_key    the jump host's host key (kept across restarts)
//	known_hosts             "[127.0.0.1]:PORT ssh-ed25519 ..." pinning the jump host
//	guests/                 the simulated guests' filesystems
//
// pvesim.env:
//
//	PROXMOX_VE_ENDPOINT=https://127.0.0.1:PORT/   base URL, bpg-style: append "api2/json"
//	PROXMOX_VE_API_TOKEN=root@pam!aimachine=SECRET  (no privilege separation; use a PCI mapping)
//	PROXMOX_VE_USERNAME=root@pam                  PROXMOX_VE_PASSWORD=...  (raw hostpci needs this)
//	PROXMOX_VE_CA_FILE=<state>/pve-root-ca.pem    PROXMOX_VE_FINGERPRINT=AB:CD:...  (node cert SHA-256)
//	AIMACHINE_JUMP_HOST=root@127.0.0.1:PORT       AIMACHINE_SSH_KEY=<state>/id_ed25519
//	AIMACHINE_KNOWN_HOSTS=<state>/known_hosts     AIMACHINE_SIMULATOR=1
//	PVESIM_CONTROL_URL=https://127.0.0.1:PORT/_sim/
//
// The password and token secret are random per start unless Options or the topology file fix
// them; the SSH keys persist in a reused state dir. fakes/container runs the same thing in Docker.
//
// testdata/fleet-topology.yaml is a four-node cluster (pve1..pve4, eight GPUs of two models, the
// mapping rtx5060ti spanning three nodes, a VM that is not aimachine's): start on it with
// Options.TopologyFile (pvesim --topology), or switch a running simulator onto it for one reset
// with POST /_sim/reset {"topology": …} (simclient ResetTopology).
package sim
