// Package pve is the only importer of go-proxmox: the API interface the provisioning tasks
// need, an adapter over go-proxmox v0.8.2 that hides its quirks, and the mapping of Proxmox
// error texts to sentinel errors.
package pve
