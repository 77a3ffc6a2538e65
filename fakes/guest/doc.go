// Package guest simulates the Ubuntu 24.04 cloud-image VMs the fake Proxmox host boots: one SSH server
// per VM (x/crypto/ssh, public-key auth from cloud-init), a POSIX shell (mvdan.cc/sh) over a per-guest
// virtual filesystem, simulated programs (apt, ubuntu-drivers, nvidia-smi, CUDA, systemd, vLLM, Ollama,
// cloud-init) whose outputs and exit codes follow shared/reference/guest.md, the QEMU guest agent, and
// injectable faults. It implements pve.GuestFactory; guests are reached only in memory via DialGuest.
package guest
