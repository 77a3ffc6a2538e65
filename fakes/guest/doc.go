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
// No card is special: every fact about the passed-through GPU (nvidia-smi name, memory, compute
// capability, power limit; lspci names from noble's pci.ids and the PCI class; the driver
// branches and module flavours ubuntu-drivers offers; whether the proprietary module refuses it
// (Blackwell) or the open one cannot drive it (no GSP: Pascal); what nvcc can target) comes from
// the fakes/nvgpu device table, keyed by the PCI device id of the topology. The `model` line of
// `ubuntu-drivers devices` appears only for ids noble's pci.ids knows (not 10de:2d04). A device id
// the table does not know gets no driver candidates and no compute capability.
//
// Layout: factory.go (Factory, options, DialGuest), guest.go (lifecycle, boot), sshd.go, memconn.go,
// shell.go (interpreter glue, sudo, sh), fs.go (virtual FS, users), image.go (the cloud image),
// system.go (kernel/journal/listeners state), apt.go, nvidia.go, cuda.go, python.go, vllm.go, ollama.go,
// systemd.go, unitsyntax.go (how systemd 255 reads unit files, command lines, specifiers, Environment=
// and EnvironmentFile=), cloudinit.go, net.go (curl, wget, the few downloads), coreutils.go, textutils.go
// (sed, awk), agent.go, faults.go, control.go.
//
// Time: every simulated duration (boot 20 s, cloud-init, unattended-upgrades holding the dpkg lock
// 90 s after first boot, apt unpacking, model downloads and loads, `sleep` in the guest) is multiplied
// by the time scale; at 0 everything is instant except keep-alives, which then never expire.
//
// Kernel modules: Canonical's prebuilt linux-modules-nvidia-* exist for the running kernel unless the
// no-prebuilt-modules fault is on; then ubuntu-drivers offers the driver only through DKMS
// (hidden without --include-dkms; `install` without it prints the two package lines and "All the
// available drivers are already installed." and installs nothing), and the DKMS faults
// (dkms-build-failure, missing-kernel-headers, secure-boot) bite. A failed DKMS postinst leaves the
// package half-configured (iF) with build/make.log; every later apt install run, or
// `dpkg --configure -a`, configures it again; `ubuntu-drivers install` treats it as installed.
//
// Not modelled (guest.md sections in brackets): the 610 branch and its KMD/CUDA UMD header and
// `-q` keys [§0, §3.1]; an `-open` package carrying the `recommended` mark (the closed build of the newest branch
// always gets it) [§2.2]; lspci with an updated pci.ids (marketing names) [§5]; a lost GPU
// (`Unable to determine the device handle…`, exit 15/255), Xid, BAR, nouveau-ownership and FLR
// reset failures in dmesg [§3.4, §4.2, §10.1]; the HWE kernel flavour (-generic-hwe-24.04) [§2.3];
// the older vLLM KV-cache wording [§7.7]; the interactive command-not-found suggestion for a missing
// nvidia-smi (`Command 'nvidia-smi' not found, but can be installed with:`) [§3.4] — SSH exec shells are
// non-interactive, so the fake prints bash's `bash: line 1: nvidia-smi: command not found` (exit 127).
package guest
