// Not generated: the aimachine fork's own code (see internal/xssh/internal/forkgen/patches.go).

package xssh

import "io"

// leanPublicKey sends a signed publickey request for the first key of the first
// authentication method, with no "none" request and no query before it (RFC 4252 section 7:
// a client may send the signature at once). It reports whether a request went out; false
// (nothing sent) when ClientConfig.LeanAuth is off or the method or key does not allow it, so
// that the usual exchange handles it and reports any error.
func (c *connection) leanPublicKey(config *ClientConfig, extensions map[string][]byte) (bool, error) {
	if !config.LeanAuth || config.AuthCallback != nil || len(config.Auth) == 0 {
		return false, nil
	}
	cb, ok := config.Auth[0].(publicKeyCallback)
	if !ok {
		return false, nil
	}
	signers, err := cb()
	if err != nil || len(signers) == 0 {
		return false, nil
	}
	signer := signers[0]
	as, algo, err := pickSignatureAlgorithm(signer, extensions)
	if err != nil {
		return false, nil
	}
	pubKey := signer.PublicKey().Marshal()
	data := buildDataSignedForAuth(c.transport.getSessionID(), userAuthRequestMsg{
		User:    config.User,
		Service: serviceSSH,
		Method:  cb.method(),
	}, algo, pubKey)
	sign, err := as.SignWithAlgorithm(config.Rand, data, underlyingAlgo(algo))
	if err != nil {
		return false, nil
	}
	s := Marshal(sign)
	sig := make([]byte, stringLength(len(s)))
	marshalString(sig, s)
	msg := publickeyAuthMsg{
		User:     config.User,
		Service:  serviceSSH,
		Method:   cb.method(),
		HasSig:   true,
		Algoname: algo,
		PubKey:   pubKey,
		Sig:      sig,
	}
	if err := c.transport.writePacket(Marshal(&msg)); err != nil {
		return false, err
	}
	return true, nil
}

// leanAnswer is the server's answer to the lean request, replayed as the first step of the
// usual exchange in place of the "none" request (whose answer would list the same methods).
type leanAnswer struct {
	res     authResult
	methods []string
}

func (a leanAnswer) auth([]byte, string, packetConn, io.Reader, map[string][]byte) (authResult, []string, error) {
	return a.res, a.methods, nil
}

func (a leanAnswer) method() string { return "none" }

// withoutFirstKey is auth (the connection's own copy of ClientConfig.Auth) with the first
// public-key method's first key left out: the lean request tried it already.
func withoutFirstKey(auth []AuthMethod) []AuthMethod {
	cb, ok := auth[0].(publicKeyCallback)
	if !ok {
		return auth
	}
	rest := func() ([]Signer, error) {
		signers, err := cb()
		if err != nil || len(signers) == 0 {
			return signers, err
		}
		return signers[1:], nil
	}
	return append([]AuthMethod{publicKeyCallback(rest)}, auth[1:]...)
}
