// Package reliability holds aimachine's reliability suites, run against the in-process
// simulator (fakes/sim) through the real CLI binary: the fault matrix (every fault the
// simulator offers plus network faults from an embedded toxiproxy in front of the API and the
// jump host), crash consistency (the CLI killed at every phase boundary) and concurrency (runs
// racing for one VM or one GPU). RELIABILITY.md at the repository root lists what they pin.
package reliability
