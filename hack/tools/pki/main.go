// Command pki writes the certificates, keys and kubeconfigs of the local
// control plane started by hack/local-up.sh, and the scheduler configuration
// cosched runs with there. It uses only crypto/x509 (no openssl).
//
// Usage:
//
//	pki init -pki-dir DIR -kubeconfig-dir DIR -server https://127.0.0.1:6443
//	    Creates (or keeps, when present and still valid) a CA, the
//	    kube-apiserver serving certificate (127.0.0.1, localhost and the
//	    in-cluster names), client certificates for admin (O=system:masters),
//	    kube-controller-manager, cosched (as the ServiceAccount
//	    cosched-system/cosched) and kwok, and the service-account signing key
//	    pair and a front-proxy CA and client certificate (request-header
//	    authentication); then (re)writes one kubeconfig per client with the certificates
//	    embedded.
//
//	pki scheduler-config -configmap FILE -key config.yaml -kubeconfig FILE -out FILE
//	    Extracts the KubeSchedulerConfiguration stored under data[KEY] of the
//	    ConfigMap manifest FILE, sets clientConnection.kubeconfig and writes it.
package main

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/pem"
	"errors"
	"flag"
	"fmt"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"strings"
	"time"

	"sigs.k8s.io/yaml"
)

const (
	caValidity   = 10 * 365 * 24 * time.Hour
	leafValidity = 365 * 24 * time.Hour
	// A leaf that expires within this window is re-issued.
	renewBefore = 7 * 24 * time.Hour
)

func main() {
	if len(os.Args) < 2 {
		usage()
	}
	var err error
	switch os.Args[1] {
	case "init":
		err = runInit(os.Args[2:])
	case "scheduler-config":
		err = runSchedulerConfig(os.Args[2:])
	default:
		usage()
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "pki: %v\n", err)
		os.Exit(1)
	}
}

func usage() {
	fmt.Fprintln(os.Stderr, "usage: pki init -pki-dir DIR -kubeconfig-dir DIR -server URL")
	fmt.Fprintln(os.Stderr, "       pki scheduler-config -configmap FILE [-key config.yaml] -kubeconfig FILE -out FILE")
	os.Exit(2)
}

// client describes one client certificate and the kubeconfig that uses it.
type client struct {
	name   string // file base name and kubeconfig user name
	cn     string
	orgs   []string
	config bool // write a kubeconfig
}

var clients = []client{
	{name: "admin", cn: "kubernetes-admin", orgs: []string{"system:masters"}, config: true},
	{name: "kube-controller-manager", cn: "system:kube-controller-manager", config: true},
	// The same identity as a pod running under the ServiceAccount
	// cosched-system/cosched, so the bindings in manifests/cosched/rbac.yaml
	// apply to the local scheduler process.
	{name: "cosched", cn: "system:serviceaccount:cosched-system:cosched",
		orgs: []string{"system:serviceaccounts", "system:serviceaccounts:cosched-system"}, config: true},
	// The kwok controller manages fake nodes and pods of every namespace.
	{name: "kwok", cn: "kwok-controller", orgs: []string{"system:masters"}, config: true},
}

func runInit(args []string) error {
	fs := flag.NewFlagSet("init", flag.ExitOnError)
	pkiDir := fs.String("pki-dir", "", "directory for certificates and keys")
	kcDir := fs.String("kubeconfig-dir", "", "directory for the kubeconfigs")
	server := fs.String("server", "https://127.0.0.1:6443", "kube-apiserver URL written into the kubeconfigs")
	_ = fs.Parse(args)
	if *pkiDir == "" || *kcDir == "" {
		return errors.New("init: -pki-dir and -kubeconfig-dir are required")
	}
	for _, d := range []string{*pkiDir, *kcDir} {
		if err := os.MkdirAll(d, 0o700); err != nil {
			return err
		}
	}

	ca, caKey, created, err := loadOrCreateCA(*pkiDir, "ca", "cosched-local-ca")
	if err != nil {
		return err
	}
	force := created // a new CA invalidates every leaf

	_, serviceNet, _ := net.ParseCIDR("10.0.0.0/24")
	firstServiceIP := make(net.IP, 4)
	copy(firstServiceIP, serviceNet.IP.To4())
	firstServiceIP[3]++
	serving := leafSpec{
		cn:     "kube-apiserver",
		server: true,
		dns: []string{"localhost", "kubernetes", "kubernetes.default", "kubernetes.default.svc",
			"kubernetes.default.svc.cluster.local"},
		ips: []net.IP{net.ParseIP("127.0.0.1"), firstServiceIP},
	}
	if err := ensureLeaf(*pkiDir, "apiserver", serving, ca, caKey, force); err != nil {
		return err
	}
	for _, c := range clients {
		if err := ensureLeaf(*pkiDir, c.name, leafSpec{cn: c.cn, orgs: c.orgs}, ca, caKey, force); err != nil {
			return err
		}
	}
	// Front proxy (request-header authentication): kube-apiserver identifies
	// itself with front-proxy-client when it proxies to aggregated API servers,
	// and publishes the CA in kube-system/extension-apiserver-authentication,
	// where delegated authentication (cosched, kube-controller-manager) reads it.
	fpCA, fpKey, fpCreated, err := loadOrCreateCA(*pkiDir, "front-proxy-ca", "cosched-local-front-proxy-ca")
	if err != nil {
		return err
	}
	if err := ensureLeaf(*pkiDir, "front-proxy-client", leafSpec{cn: "front-proxy-client"}, fpCA, fpKey, fpCreated); err != nil {
		return err
	}
	if err := ensureServiceAccountKey(*pkiDir); err != nil {
		return err
	}

	caPEM, err := os.ReadFile(filepath.Join(*pkiDir, "ca.crt"))
	if err != nil {
		return err
	}
	for _, c := range clients {
		if !c.config {
			continue
		}
		crt, err := os.ReadFile(filepath.Join(*pkiDir, c.name+".crt"))
		if err != nil {
			return err
		}
		key, err := os.ReadFile(filepath.Join(*pkiDir, c.name+".key"))
		if err != nil {
			return err
		}
		if err := writeFileAtomic(filepath.Join(*kcDir, c.name+".kubeconfig"), kubeconfig(*server, c.name, caPEM, crt, key), 0o600); err != nil {
			return err
		}
	}
	return nil
}

// loadOrCreateCA returns the CA in dir, creating it when either file is
// missing or unreadable.
func loadOrCreateCA(dir, base, cn string) (*x509.Certificate, crypto.Signer, bool, error) {
	crtPath, keyPath := filepath.Join(dir, base+".crt"), filepath.Join(dir, base+".key")
	if crt, key, err := loadPair(crtPath, keyPath); err == nil && crt.IsCA && time.Until(crt.NotAfter) > renewBefore {
		return crt, key, false, nil
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, false, err
	}
	now := time.Now()
	tmpl := &x509.Certificate{
		SerialNumber:          serial(),
		Subject:               pkix.Name{CommonName: cn},
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.Add(caValidity),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign | x509.KeyUsageDigitalSignature,
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		return nil, nil, false, err
	}
	if err := writePair(crtPath, keyPath, der, key); err != nil {
		return nil, nil, false, err
	}
	crt, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, nil, false, err
	}
	return crt, key, true, nil
}

type leafSpec struct {
	cn     string
	orgs   []string
	server bool
	dns    []string
	ips    []net.IP
}

// ensureLeaf keeps dir/name.{crt,key} when they are signed by ca, match the
// spec and are not about to expire; otherwise it issues a new pair.
func ensureLeaf(dir, name string, spec leafSpec, ca *x509.Certificate, caKey crypto.Signer, force bool) error {
	crtPath, keyPath := filepath.Join(dir, name+".crt"), filepath.Join(dir, name+".key")
	if !force {
		if crt, _, err := loadPair(crtPath, keyPath); err == nil && leafMatches(crt, spec, ca) {
			return nil
		}
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return err
	}
	now := time.Now()
	tmpl := &x509.Certificate{
		SerialNumber: serial(),
		Subject:      pkix.Name{CommonName: spec.cn, Organization: spec.orgs},
		NotBefore:    now.Add(-time.Hour),
		NotAfter:     now.Add(leafValidity),
		KeyUsage:     x509.KeyUsageDigitalSignature | x509.KeyUsageKeyEncipherment,
		DNSNames:     spec.dns,
		IPAddresses:  spec.ips,
	}
	if spec.server {
		tmpl.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}
	} else {
		tmpl.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, key.Public(), caKey)
	if err != nil {
		return err
	}
	return writePair(crtPath, keyPath, der, key)
}

func leafMatches(crt *x509.Certificate, spec leafSpec, ca *x509.Certificate) bool {
	if crt.CheckSignatureFrom(ca) != nil || time.Until(crt.NotAfter) < renewBefore {
		return false
	}
	if crt.Subject.CommonName != spec.cn || strings.Join(crt.Subject.Organization, ",") != strings.Join(spec.orgs, ",") {
		return false
	}
	if strings.Join(crt.DNSNames, ",") != strings.Join(spec.dns, ",") || len(crt.IPAddresses) != len(spec.ips) {
		return false
	}
	for i := range spec.ips {
		if !crt.IPAddresses[i].Equal(spec.ips[i]) {
			return false
		}
	}
	return true
}

// ensureServiceAccountKey writes the RSA key pair kube-apiserver signs
// (sa.key) and verifies (sa.pub) service-account tokens with.
func ensureServiceAccountKey(dir string) error {
	keyPath, pubPath := filepath.Join(dir, "sa.key"), filepath.Join(dir, "sa.pub")
	if b, err := os.ReadFile(keyPath); err == nil {
		if k, err := parseKey(b); err == nil {
			if _, err := os.Stat(pubPath); err == nil {
				return nil
			}
			return writePublic(pubPath, k.Public())
		}
	}
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		return err
	}
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return err
	}
	if err := writeFileAtomic(keyPath, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), 0o600); err != nil {
		return err
	}
	return writePublic(pubPath, key.Public())
}

func writePublic(path string, pub crypto.PublicKey) error {
	der, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		return err
	}
	return writeFileAtomic(path, pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der}), 0o644)
}

func loadPair(crtPath, keyPath string) (*x509.Certificate, crypto.Signer, error) {
	crtPEM, err := os.ReadFile(crtPath)
	if err != nil {
		return nil, nil, err
	}
	keyPEM, err := os.ReadFile(keyPath)
	if err != nil {
		return nil, nil, err
	}
	block, _ := pem.Decode(crtPEM)
	if block == nil || block.Type != "CERTIFICATE" {
		return nil, nil, fmt.Errorf("%s: no certificate", crtPath)
	}
	crt, err := x509.ParseCertificate(block.Bytes)
	if err != nil {
		return nil, nil, err
	}
	key, err := parseKey(keyPEM)
	if err != nil {
		return nil, nil, fmt.Errorf("%s: %w", keyPath, err)
	}
	return crt, key, nil
}

func parseKey(b []byte) (crypto.Signer, error) {
	block, _ := pem.Decode(b)
	if block == nil {
		return nil, errors.New("no PEM data")
	}
	k, err := x509.ParsePKCS8PrivateKey(block.Bytes)
	if err != nil {
		return nil, err
	}
	s, ok := k.(crypto.Signer)
	if !ok {
		return nil, errors.New("not a signing key")
	}
	return s, nil
}

func writePair(crtPath, keyPath string, der []byte, key crypto.Signer) error {
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return err
	}
	if err := writeFileAtomic(keyPath, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER}), 0o600); err != nil {
		return err
	}
	return writeFileAtomic(crtPath, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o644)
}

func serial() *big.Int {
	n, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	if err != nil {
		panic(err)
	}
	return n
}

func writeFileAtomic(path string, data []byte, mode os.FileMode) error {
	tmp := fmt.Sprintf("%s.tmp.%d", path, os.Getpid())
	if err := os.WriteFile(tmp, data, mode); err != nil {
		return err
	}
	if err := os.Chmod(tmp, mode); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}

func kubeconfig(server, user string, ca, crt, key []byte) []byte {
	b64 := base64.StdEncoding.EncodeToString
	var buf bytes.Buffer
	fmt.Fprintf(&buf, `apiVersion: v1
kind: Config
clusters:
- name: cosched-local
  cluster:
    server: %s
    certificate-authority-data: %s
users:
- name: %s
  user:
    client-certificate-data: %s
    client-key-data: %s
contexts:
- name: cosched-local
  context:
    cluster: cosched-local
    user: %s
current-context: cosched-local
`, server, b64(ca), user, b64(crt), b64(key), user)
	return buf.Bytes()
}

func runSchedulerConfig(args []string) error {
	fs := flag.NewFlagSet("scheduler-config", flag.ExitOnError)
	cmPath := fs.String("configmap", "", "ConfigMap manifest holding the KubeSchedulerConfiguration")
	key := fs.String("key", "config.yaml", "data key of the configuration in the ConfigMap")
	kc := fs.String("kubeconfig", "", "value for clientConnection.kubeconfig")
	out := fs.String("out", "", "output file")
	_ = fs.Parse(args)
	if *cmPath == "" || *kc == "" || *out == "" {
		return errors.New("scheduler-config: -configmap, -kubeconfig and -out are required")
	}
	raw, err := os.ReadFile(*cmPath)
	if err != nil {
		return err
	}
	var cm struct {
		Kind string            `json:"kind"`
		Data map[string]string `json:"data"`
	}
	if err := yaml.Unmarshal(raw, &cm); err != nil {
		return fmt.Errorf("%s: %w", *cmPath, err)
	}
	if cm.Kind != "ConfigMap" {
		return fmt.Errorf("%s: kind is %q, want ConfigMap", *cmPath, cm.Kind)
	}
	text, ok := cm.Data[*key]
	if !ok {
		return fmt.Errorf("%s: no data key %q", *cmPath, *key)
	}
	var cfg map[string]any
	if err := yaml.Unmarshal([]byte(text), &cfg); err != nil {
		return fmt.Errorf("%s: data[%s]: %w", *cmPath, *key, err)
	}
	if cfg["kind"] != "KubeSchedulerConfiguration" {
		return fmt.Errorf("%s: data[%s] is not a KubeSchedulerConfiguration", *cmPath, *key)
	}
	cc, _ := cfg["clientConnection"].(map[string]any)
	if cc == nil {
		cc = map[string]any{}
	}
	cc["kubeconfig"] = *kc
	cfg["clientConnection"] = cc
	b, err := yaml.Marshal(cfg)
	if err != nil {
		return err
	}
	header := fmt.Sprintf("# GENERATED by hack/local-up.sh from %s (data[%s]) with\n# clientConnection.kubeconfig set for the local control plane.\n", filepath.Base(*cmPath), *key)
	return writeFileAtomic(*out, append([]byte(header), b...), 0o644)
}
