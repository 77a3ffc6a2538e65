// Package guesttest is a small in-process SSH server (x/crypto/ssh) for provision's tests: exec
// sessions handed to a Go handler or a real /bin/sh, direct-tcpip for jump-host tests, restarts
// and mid-command drops. Like net/http/httptest, it is for tests only.
package guesttest
