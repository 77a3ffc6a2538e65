// Package fleet runs one command over many catalog VMs: which VMs (Select), where the ones with
// node: auto go (Place), the bounded concurrent fan-out with its recap (Run, Table, Lines for
// per-VM progress lines), and the read-only view of them all (Status: one cluster read, one SSH
// probe per running VM). It uses only provision's public API; cmd/aimachine and the fleet
// scenario (features/fleet.feature) call it.
//
// Placement rule (Place), deterministic: VMs are placed in catalog order. A VM that exists in
// the cluster stays on its node. A node: auto VM may go to a catalog node that lists its disk
// storage, is online, where its gpu.mapping has an entry, and where
//
//   - a device of the mapping is free: the node's entries of the mapping, less one per running
//     or onboot VM using the mapping there, less entries a raw hostpci of such a VM overlaps,
//     less the devices this run already gave to VMs it placed there (PVE takes the first free
//     entry of a mapping pool at start: qemu-server PCI.pm);
//   - the cores fit: the node's CPUs (maxcpu) less the cores of running or onboot VMs and of
//     VMs this run placed there, and the catalog node's declared cores;
//   - the memory fits: the node's free memory (nodes/{node}/status) less the memory of stopped
//     onboot VMs and of VMs this run placed there, and the catalog node's declared memory.
//
// Among those, the node with the most free devices of the mapping wins (it spreads VMs, so
// deploys run on different nodes), then the most free memory, then the name. When no node
// fits, the error says which constraint failed on which node.
package fleet
