// Not generated: the aimachine fork's own code.

// Package xssh is golang.org/x/crypto/ssh with one client change: ClientConfig.LeanAuth,
// which opens user authentication with a signed public-key request sent right behind the
// service request (3 network round trips fewer per handshake than upstream's "none" request,
// key query and wait for SERVICE_ACCEPT). Everything else is upstream's code, generated from
// the x/crypto version go.mod requires; internal/xssh/internal/forkgen/patches.go lists each
// difference and TestForkIsUpstreamPlusPatches keeps the copy honest. Only the client side of
// aimachine uses it: the fakes' servers, known_hosts and ssh-agent stay on upstream.
package xssh

//go:generate go run ./gen
