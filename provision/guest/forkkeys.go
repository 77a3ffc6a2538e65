package guest

import (
	"io"

	ussh "golang.org/x/crypto/ssh"

	ssh "github.com/aimachine/aimachine/internal/xssh"
)

// The SSH client is internal/xssh (x/crypto/ssh with LeanAuth), while known_hosts and
// ssh-agent come from upstream's packages: keys cross between the two in their wire form.

// upstreamKey is a host key the fork saw, as upstream's type (for knownhosts).
func upstreamKey(k ssh.PublicKey) (ussh.PublicKey, error) {
	return ussh.ParsePublicKey(k.Marshal())
}

// forkSigner presents an upstream signer (an ssh-agent key) to the fork. The signing stays
// with the agent; signatures are copied field by field.
func forkSigner(u ussh.Signer) (ssh.Signer, error) {
	pub, err := ssh.ParsePublicKey(u.PublicKey().Marshal())
	if err != nil {
		return nil, err
	}
	base := agentSigner{u: u, pub: pub}
	if as, ok := u.(ussh.AlgorithmSigner); ok {
		return algorithmAgentSigner{base, as}, nil
	}
	return base, nil
}

type agentSigner struct {
	u   ussh.Signer
	pub ssh.PublicKey
}

func (s agentSigner) PublicKey() ssh.PublicKey { return s.pub }

func (s agentSigner) Sign(rand io.Reader, data []byte) (*ssh.Signature, error) {
	return forkSignature(s.u.Sign(rand, data))
}

// algorithmAgentSigner keeps the agent's choice of RSA signature algorithms (rsa-sha2-256/512).
type algorithmAgentSigner struct {
	agentSigner
	as ussh.AlgorithmSigner
}

func (s algorithmAgentSigner) SignWithAlgorithm(rand io.Reader, data []byte, algorithm string) (*ssh.Signature, error) {
	return forkSignature(s.as.SignWithAlgorithm(rand, data, algorithm))
}

func forkSignature(sig *ussh.Signature, err error) (*ssh.Signature, error) {
	if err != nil {
		return nil, err
	}
	return &ssh.Signature{Format: sig.Format, Blob: sig.Blob, Rest: sig.Rest}, nil
}
