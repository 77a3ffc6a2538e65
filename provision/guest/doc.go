// Package guest is the only SSH client code of aimachine: a Runner over one pinned,
// optionally jump-hosted SSH connection that reconnects after a reboot.
package guest
