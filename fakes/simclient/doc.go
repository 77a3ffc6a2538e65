// Package simclient is the thin HTTP client of the simulator's control API (/_sim/... of
// fakes/pve and /_sim/guest/... of fakes/guest): reset, counters, fault injection and hardware
// changes. It is what the godog steps use; it imports no fake package.
package simclient
