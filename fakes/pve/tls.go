package pve

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"strings"
	"time"
)

// tlsMaterial is the cluster CA (pve-root-ca.pem) and the node certificate (pve-ssl.pem).
type tlsMaterial struct {
	caPEM       []byte
	pool        *x509.CertPool
	cert        tls.Certificate
	fingerprint string
}

func newTLSMaterial(t Topology) *tlsMaterial {
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		panic(err)
	}
	now := time.Now()
	caTmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "Proxmox Virtual Environment", OrganizationalUnit: []string{"aimachine-fake"}, Organization: []string{"PVE Cluster Manager CA"}},
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.Add(10 * 365 * 24 * time.Hour),
		IsCA:                  true,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		panic(err)
	}
	ca, _ := x509.ParseCertificate(caDER)
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		panic(err)
	}
	name := DefaultNode
	if len(t.Nodes) > 0 {
		name = t.Nodes[0].Name
	}
	leafTmpl := &x509.Certificate{
		SerialNumber: big.NewInt(2),
		Subject:      pkix.Name{CommonName: name + ".lan", Organization: []string{"PVE Cluster Node"}},
		NotBefore:    now.Add(-time.Hour),
		NotAfter:     now.Add(2 * 365 * 24 * time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature | x509.KeyUsageKeyEncipherment,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		DNSNames:     []string{"localhost", name, name + ".lan"},
		IPAddresses:  []net.IP{net.ParseIP("127.0.0.1"), net.IPv6loopback},
	}
	leafDER, err := x509.CreateCertificate(rand.Reader, leafTmpl, ca, &key.PublicKey, caKey)
	if err != nil {
		panic(err)
	}
	pool := x509.NewCertPool()
	pool.AddCert(ca)
	sum := sha256.Sum256(leafDER)
	hexes := make([]string, len(sum))
	for i, b := range sum {
		hexes[i] = fmt.Sprintf("%02X", b)
	}
	return &tlsMaterial{
		caPEM:       pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: caDER}),
		pool:        pool,
		cert:        tls.Certificate{Certificate: [][]byte{leafDER, caDER}, PrivateKey: key},
		fingerprint: strings.Join(hexes, ":"),
	}
}

// TLSConfig is the server-side TLS config (node certificate signed by the fake cluster CA, HTTP/1.1 only).
func (s *Server) TLSConfig() *tls.Config {
	return &tls.Config{Certificates: []tls.Certificate{s.tlsMat.cert}, NextProtos: []string{"http/1.1"}, MinVersion: tls.VersionTLS12}
}

// CertPool holds the fake cluster CA (as /etc/pve/pve-root-ca.pem).
func (s *Server) CertPool() *x509.CertPool { return s.tlsMat.pool.Clone() }

// CACertPEM is the fake cluster CA in PEM.
func (s *Server) CACertPEM() []byte { return append([]byte(nil), s.tlsMat.caPEM...) }

// Fingerprint is the SHA-256 fingerprint of the node certificate, as PVE shows it
// ("AB:CD:..."; also ssl_fingerprint in GET /nodes).
func (s *Server) Fingerprint() string { return s.tlsMat.fingerprint }
