package guest

import (
	"crypto/rand"
	"crypto/rsa"
	"testing"

	ussh "golang.org/x/crypto/ssh"

	ssh "github.com/aimachine/aimachine/internal/xssh"
)

// TestForkSignerKeepsTheAlgorithm: an ssh-agent RSA key (upstream's AlgorithmSigner) signs
// through the fork with the algorithm the fork picks (rsa-sha2-512 from server-sig-algs), and
// the signature verifies under the fork's copy of the public key.
func TestForkSignerKeepsTheAlgorithm(t *testing.T) {
	priv, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	u, err := ussh.NewSignerFromKey(priv)
	if err != nil {
		t.Fatal(err)
	}
	f, err := forkSigner(u)
	if err != nil {
		t.Fatal(err)
	}
	as, ok := f.(ssh.AlgorithmSigner)
	if !ok {
		t.Fatalf("%T is not an AlgorithmSigner: the fork would sign RSA with SHA-1 only", f)
	}
	data := []byte("session id and request")
	sig, err := as.SignWithAlgorithm(rand.Reader, data, ssh.KeyAlgoRSASHA512)
	if err != nil {
		t.Fatal(err)
	}
	if sig.Format != ssh.KeyAlgoRSASHA512 {
		t.Fatalf("signature format %q, want %q", sig.Format, ssh.KeyAlgoRSASHA512)
	}
	if err := f.PublicKey().Verify(data, sig); err != nil {
		t.Fatalf("verify: %v", err)
	}
	if string(f.PublicKey().Marshal()) != string(u.PublicKey().Marshal()) {
		t.Fatal("public key changed crossing to the fork")
	}
}
