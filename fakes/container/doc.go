// Package container runs the simulated Proxmox host (fakes/cmd/pvesim) in a Docker container
// through testcontainers-go: it builds the static binary and a FROM-scratch image once per
// process, publishes the API and jump-host ports on 127.0.0.1 only and hands back the same
// sim.Endpoint an in-process sim.Sim gives.
package container
