package mqtttest

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// PKI is a throwaway certificate authority for TLS tests: made in the test,
// written to t.TempDir(), never checked in.
type PKI struct {
	Dir    string
	CAFile string // PEM of the CA certificate
	Pool   *x509.CertPool
	// ServerCert and ServerKey are a server certificate for 127.0.0.1, ::1
	// and localhost.
	ServerCert, ServerKey string

	ca    *x509.Certificate
	caKey *ecdsa.PrivateKey
	name  string
}

// NewPKI makes a CA named name and a server certificate signed by it.
func NewPKI(t testing.TB, name string) *PKI {
	t.Helper()
	dir := t.TempDir()
	key := newKey(t)
	tmpl := &x509.Certificate{
		SerialNumber:          serial(t),
		Subject:               pkix.Name{CommonName: name + " test CA"},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(24 * time.Hour),
		IsCA:                  true,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	ca, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	p := &PKI{Dir: dir, ca: ca, caKey: key, name: name, Pool: x509.NewCertPool()}
	p.Pool.AddCert(ca)
	p.CAFile = writePEM(t, filepath.Join(dir, name+"-ca.pem"), "CERTIFICATE", der)
	p.ServerCert, p.ServerKey, _ = p.issue(t, "server", "localhost", true)
	return p
}

// ClientCert issues a client certificate with Common Name cn and returns its
// files and the key pair.
func (p *PKI) ClientCert(t testing.TB, cn string) (certFile, keyFile string, kp tls.Certificate) {
	t.Helper()
	return p.issue(t, "client-"+cn, cn, false)
}

// ClientTLS is a client TLS config trusting this CA, presenting a client
// certificate for cn unless cn is empty.
func (p *PKI) ClientTLS(t testing.TB, cn string) *tls.Config {
	t.Helper()
	cfg := &tls.Config{RootCAs: p.Pool, ServerName: "localhost", MinVersion: tls.VersionTLS12}
	if cn != "" {
		_, _, kp := p.ClientCert(t, cn)
		cfg.Certificates = []tls.Certificate{kp}
	}
	return cfg
}

func (p *PKI) issue(t testing.TB, file, cn string, server bool) (string, string, tls.Certificate) {
	t.Helper()
	key := newKey(t)
	tmpl := &x509.Certificate{
		SerialNumber: serial(t),
		Subject:      pkix.Name{CommonName: cn},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(24 * time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	}
	if server {
		tmpl.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}
		tmpl.DNSNames = []string{"localhost"}
		tmpl.IPAddresses = []net.IP{net.IPv4(127, 0, 0, 1), net.IPv6loopback}
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, p.ca, &key.PublicKey, p.caKey)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	base := filepath.Join(p.Dir, p.name+"-"+file)
	certFile := writePEM(t, base+".pem", "CERTIFICATE", der)
	keyFile := writePEM(t, base+"-key.pem", "EC PRIVATE KEY", keyDER)
	kp, err := tls.LoadX509KeyPair(certFile, keyFile)
	if err != nil {
		t.Fatal(err)
	}
	return certFile, keyFile, kp
}

// ECDSA P-256: a key in microseconds, so tests make their own.
func newKey(t testing.TB) *ecdsa.PrivateKey {
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func serial(t testing.TB) *big.Int {
	n, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 62))
	if err != nil {
		t.Fatal(err)
	}
	return n
}

func writePEM(t testing.TB, path, typ string, der []byte) string {
	t.Helper()
	if err := os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}
