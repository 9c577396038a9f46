package cluster

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// Identities the static token file and the certificates give each client.
const (
	adminUser             = "layerkeeper-admin"
	controllerManagerUser = "system:kube-controller-manager"
	schedulerUser         = "system:kube-scheduler"
	kubeletUser           = "system:node:" + NodeName
)

// tokens are the bearer tokens of the static token file.
type tokens struct {
	Admin, Kubelet, ControllerManager, Scheduler string
}

// writePKI writes, under <dir>/pki: a CA; the API server's serving certificate (127.0.0.1,
// the kubernetes Service names and its ClusterIP); the kubelet's serving certificate
// (127.0.0.1) and the API server's client certificate for the kubelet (system:masters), both
// from that CA; the service-account signing key pair; and the static token file.
func writePKI(dir string) (tokens, error) {
	pki := filepath.Join(dir, "pki")
	if err := os.MkdirAll(pki, 0o700); err != nil {
		return tokens{}, err
	}
	ca, caKey, err := newCert(nil, nil, certSpec{cn: "layerkeeper-cluster-ca", ca: true})
	if err != nil {
		return tokens{}, err
	}
	if err := writeCertAndKey(pki, "ca", ca, caKey); err != nil {
		return tokens{}, err
	}
	for name, spec := range map[string]certSpec{
		"apiserver": {cn: "kube-apiserver", server: true, ips: []string{"127.0.0.1", serviceClusterIP},
			dns: []string{"localhost", "kubernetes", "kubernetes.default", "kubernetes.default.svc", "kubernetes.default.svc.cluster.local"}},
		"kubelet":                  {cn: kubeletUser, orgs: []string{"system:nodes"}, server: true, ips: []string{"127.0.0.1"}, dns: []string{"localhost"}},
		"apiserver-kubelet-client": {cn: "kube-apiserver-kubelet-client", orgs: []string{"system:masters"}, client: true},
	} {
		cert, key, err := newCert(ca, caKey, spec)
		if err != nil {
			return tokens{}, err
		}
		if err := writeCertAndKey(pki, name, cert, key); err != nil {
			return tokens{}, err
		}
	}

	saKey, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		return tokens{}, err
	}
	if err := writeKey(filepath.Join(pki, "sa.key"), saKey); err != nil {
		return tokens{}, err
	}
	pub, err := x509.MarshalPKIXPublicKey(&saKey.PublicKey)
	if err != nil {
		return tokens{}, err
	}
	if err := os.WriteFile(filepath.Join(pki, "sa.pub"), pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: pub}), 0o644); err != nil {
		return tokens{}, err
	}

	t := tokens{Admin: randomHex(16), Kubelet: randomHex(16), ControllerManager: randomHex(16), Scheduler: randomHex(16)}
	csv := strings.Join([]string{
		fmt.Sprintf("%s,%s,%s,system:masters", t.Admin, adminUser, adminUser),
		fmt.Sprintf("%s,%s,%s,system:nodes", t.Kubelet, kubeletUser, kubeletUser),
		fmt.Sprintf("%s,%s,%s", t.ControllerManager, controllerManagerUser, controllerManagerUser),
		fmt.Sprintf("%s,%s,%s", t.Scheduler, schedulerUser, schedulerUser),
	}, "\n") + "\n"
	return t, os.WriteFile(filepath.Join(pki, "tokens.csv"), []byte(csv), 0o600)
}

type certSpec struct {
	cn             string
	orgs           []string
	ca             bool
	server, client bool
	ips, dns       []string
}

// newCert creates a P-256 key and a certificate for it, valid for a year, signed by parent
// (self-signed when parent is nil).
func newCert(parent *x509.Certificate, parentKey crypto.Signer, s certSpec) (*x509.Certificate, *ecdsa.PrivateKey, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, err
	}
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 126))
	if err != nil {
		return nil, nil, err
	}
	now := time.Now()
	tmpl := &x509.Certificate{
		SerialNumber: serial,
		Subject:      pkix.Name{CommonName: s.cn, Organization: s.orgs},
		NotBefore:    now.Add(-time.Hour),
		NotAfter:     now.Add(365 * 24 * time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		DNSNames:     s.dns,
	}
	for _, ip := range s.ips {
		tmpl.IPAddresses = append(tmpl.IPAddresses, net.ParseIP(ip))
	}
	if s.ca {
		tmpl.IsCA, tmpl.BasicConstraintsValid = true, true
		tmpl.KeyUsage |= x509.KeyUsageCertSign | x509.KeyUsageCRLSign
	}
	if s.server {
		tmpl.ExtKeyUsage = append(tmpl.ExtKeyUsage, x509.ExtKeyUsageServerAuth)
	}
	if s.client {
		tmpl.ExtKeyUsage = append(tmpl.ExtKeyUsage, x509.ExtKeyUsageClientAuth)
	}
	signer, issuer := crypto.Signer(key), tmpl
	if parent != nil {
		signer, issuer = parentKey, parent
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, issuer, &key.PublicKey, signer)
	if err != nil {
		return nil, nil, err
	}
	cert, err := x509.ParseCertificate(der)
	return cert, key, err
}

func writeCertAndKey(dir, name string, cert *x509.Certificate, key crypto.Signer) error {
	if err := os.WriteFile(filepath.Join(dir, name+".crt"), pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: cert.Raw}), 0o644); err != nil {
		return err
	}
	return writeKey(filepath.Join(dir, name+".key"), key)
}

func writeKey(p string, key crypto.Signer) error {
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return err
	}
	return os.WriteFile(p, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), 0o600)
}

func randomHex(n int) string {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		panic(err)
	}
	return hex.EncodeToString(b)
}
