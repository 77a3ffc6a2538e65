// Package guest simulates the Ubuntu 24.04 cloud-image VMs the fake Proxmox host boots: one SSH server
// per VM (x/crypto/ssh, public-key auth from cloud-init), a POSIX shell (mvdan.cc/sh) over a per-guest
// virtual filesystem, simulated programs (apt, ubuntu-drivers, nvidia-smi, CUDA, systemd, vLLM, Ollama,
// cloud-init) whose outputs and exit codes follow shared/reference/guest.md, the QEMU guest agent, and
// injectable faults. It implements pve.GuestFactory; guests are reached only in memory via DialGuest.
//
// Use:
//
//	f := guest.NewFactory(guest.WithTimeScale(0.01), guest.WithLogger(log), guest.WithStateDir(dir))
//	srv := pve.New(pve.WithGuestFactory(f), ...)          // the fake host creates and boots guests
//	conn, err := f.DialGuest(ctx, "192.168.0.140:22")     // in memory; never a network dial
//	mux.Handle("/_sim/guest/", f.ControlHandler())        // faults, stats, guests (see ControlHandler)
//
// Layout: factory.go (Factory, options, DialGuest), guest.go (lifecycle, boot), sshd.go, memconn.go,
// shell.go (interpreter glue, sudo, sh), fs.go (virtual FS, users), image.go (the cloud image),
// system.go (kernel/journal/listeners state), apt.go, nvidia.go, cuda.go, python.go, vllm.go, ollama.go,
// systemd.go, cloudinit.go, net.go (curl, wget, the few downloads), coreutils.go, textutils.go
// (sed, awk), agent.go, faults.go, control.go.
//
// Time: every simulated duration (boot 20 s, cloud-init, unattended-upgrades holding the dpkg lock
// 90 s after first boot, apt unpacking, model downloads and loads, `sleep` in the guest) is multiplied
// by the time scale; at 0 everything is instant except keep-alives, which then never expire.
package guest
