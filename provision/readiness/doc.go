// Package readiness owns aimachine's host readiness: Doctor checks, with reads only, whether a
// deploy of catalog VMs can succeed on a Proxmox VE host (endpoint, TLS trust, credentials,
// release, privileges, cluster, storages, image, snippet, capacity, VM id, GPU) and names the
// fix of every problem; Prepare does the host steps the API allows (download the pinned cloud
// image with its checksum, create the PCI mapping) and hands over, or writes over SSH, the
// vendor snippet the API cannot upload.
package readiness
