// Package e2e holds the end-to-end tests of provision against the simulator, in-process
// (fakes/sim) and in a container (fakes/container, one per test binary, reset between cases):
// real SSH through the simulator's jump host to simulated guests. It has no non-test code; it
// is a separate package so that a simulator in flux cannot break the provision package's own tests.
package e2e
