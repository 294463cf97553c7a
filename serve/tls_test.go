package serve

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"

	"github.com/tandemml/tandem/internal/dnstest"
	"github.com/tandemml/tandem/rollout"
)

// writeCert writes a self-signed certificate for names and its key, and
// returns the certificate (its own CA) and key paths.
func writeCert(t *testing.T, names ...string) (certFile, keyFile string) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: names[0]}, DNSNames: names,
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour), IsCA: true, BasicConstraintsValid: true,
		KeyUsage: x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	kder, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	certFile, keyFile = filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	if err := os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kder}), 0o600); err != nil {
		t.Fatal(err)
	}
	return certFile, keyFile
}

// TestShardsOverTLS: a shard replica serving TLS under its Service name
// is reached by a root and by a rollout that verify its certificate
// against the CA, dialled by DNS name to a pod address; a root that
// dials it in plaintext fails, and so does an unknown CA file.
func TestShardsOverTLS(t *testing.T) {
	const name = "tandem-shard-0.tls.test"
	cert, key := writeCert(t, name)
	d, err := dnstest.Start()
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	ss, err := NewShard(ShardOptions{DBDir: world.DB, Shard: 0, Shards: 1, Threads: 2})
	if err != nil {
		t.Fatal(err)
	}
	g, err := ss.GRPCServer(Listen{CertFile: cert, KeyFile: key})
	if err != nil {
		t.Fatal(err)
	}
	lis, err := net.Listen("tcp", "127.0.9.10:0")
	if err != nil {
		t.Fatal(err)
	}
	go g.Serve(lis)
	defer g.Stop()
	d.Set(name, "127.0.9.10")
	target := fmt.Sprintf("dns://%s/%s:%d", d.Addr(), name, lis.Addr().(*net.TCPAddr).Port)

	tlsOpt, err := ShardTLS(cert)
	if err != nil {
		t.Fatal(err)
	}
	cl, err := DialCluster(ClusterOptions{Targets: []string{target}, Dial: []grpc.DialOption{tlsOpt}})
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	_, root, _, _ := start(t, Options{Cluster: cl}, Listen{})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	resp, err := root.Retrieve(ctx, retrieveReq(t, 0, 10))
	if err != nil || len(resp.Ads) == 0 {
		t.Fatalf("root over TLS: %v, %d ads", err, len(resp.GetAds()))
	}
	rep, err := rollout.Run(ctx, rollout.Options{Targets: []string{target}, Version: ss.Active(), Dial: []grpc.DialOption{tlsOpt}})
	if err != nil || len(rep.Replicas) != 1 {
		t.Fatalf("rollout over TLS: %v", err)
	}

	plain, err := DialCluster(ClusterOptions{Targets: []string{target}})
	if err != nil {
		t.Fatal(err)
	}
	defer plain.Close()
	pctx, pcancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer pcancel()
	if _, err := plain.ActiveVersion(pctx); err == nil {
		t.Fatal("a plaintext root reached a TLS shard")
	}
	if _, err := ShardTLS(filepath.Join(t.TempDir(), "missing.pem")); err == nil || !strings.Contains(err.Error(), "missing.pem") {
		t.Fatalf("missing CA file: %v", err)
	}
}
