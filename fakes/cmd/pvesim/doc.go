// Command pvesim is a simulated Proxmox VE host: the fake API (HTTPS, like pveproxy on 8006),
// an SSH jump host (like the host's sshd) that forwards only to the simulated guests, and the
// guests themselves, all in one process.
//
// Usage:
//
//	pvesim [--listen 127.0.0.1:8006] [--ssh-listen 127.0.0.1:2222] [--state-dir DIR]
//	       [--time-scale 1] [--topology FILE] [--auth-delay 3s] [--pve-version 8.4.1] [-v]
//
// Once both listeners are up it prints one line on stdout,
//
//	pvesim: ready api=https://127.0.0.1:8006/api2/json fingerprint=AB:… jump=root@127.0.0.1:2222 env=DIR/pvesim.env
//
// and writes DIR/pvesim.env (PROXMOX_VE_* and AIMACHINE_* variables, 0600), the CA, the tool's
// SSH key pair and known_hosts. Logs go to stderr. SIGTERM or SIGINT stop it.
package main
