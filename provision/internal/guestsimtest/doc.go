// Package guestsimtest runs the guest phase end to end against the simulated Ubuntu guest
// (fakes/guest) through an in-process SSH jump host; it holds tests only.
package guestsimtest
