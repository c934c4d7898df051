package main

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"io"
	"net"
	"net/http"
	"net/url"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/mholt/acmez/v3/acme"

	"github.com/xmppcert/xmppcert/internal/testtool"
)

// TestCAServeUnderAttack runs 'xmppcert ca serve' (the real binary)
// through what an unauthenticated attacker on the network can send it: a
// 400 MB request body, an http-01 responder that answers 200 MiB, and
// 1,000 connections that send nothing, held open while a legitimate
// client (Debian's certbot) orders a certificate. certbot succeeds, and
// the server's peak resident memory stays under 200 MB.
func TestCAServeUnderAttack(t *testing.T) {
	certbot := testtool.Require(t, "certbot", "certbot")
	bin := buildXmppcert(t)
	dir := t.TempDir()
	state := filepath.Join(dir, "state")
	httpPort := testtool.FreePort(t)
	directory, proc := startCAServe(t, bin, "--state-dir", state, "ca", "serve", "--listen", "127.0.0.1:0",
		"--validate-ip", "127.0.0.1", "--http-01-port", strconv.Itoa(httpPort))
	rootFile, root := caRootFile(t, bin, state, dir)
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(root)
	client := &http.Client{Timeout: 2 * time.Minute, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}
	u, err := url.Parse(directory)
	if err != nil {
		t.Fatal(err)
	}
	const MB = 1 << 20

	// 400 MB to new-account, unauthenticated.
	start := time.Now()
	resp, err := client.Post("https://"+u.Host+"/acme/xmpp/new-account", "application/jose+json", io.LimitReader(zeros{}, 400*MB))
	if err == nil {
		resp.Body.Close()
		if resp.StatusCode < 400 {
			t.Errorf("a 400 MB new-account request: %s", resp.Status)
		}
	}
	t.Logf("400 MB body: %v after %v", errOrStatus(resp, err), time.Since(start).Round(time.Millisecond))

	// An http-01 responder that answers 200 MiB: the challenge fails,
	// and the server read a bounded part of it.
	big := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.Copy(w, io.LimitReader(zeros{}, 200*MB))
	})}
	ln, err := net.Listen("tcp", "127.0.0.1:"+strconv.Itoa(httpPort))
	if err != nil {
		t.Fatal(err)
	}
	go big.Serve(ln)
	acmeClient := &acme.Client{Directory: directory, HTTPClient: client}
	ctx := t.Context()
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	acct, err := acmeClient.NewAccount(ctx, acme.Account{TermsOfServiceAgreed: true, PrivateKey: key})
	if err != nil {
		t.Fatal(err)
	}
	// step-ca keeps the authorization pending when one of its challenges
	// fails (another may still be tried), so the test reads the http-01
	// challenge itself, which step-ca validates before it answers.
	start = time.Now()
	order, err := acmeClient.NewOrder(ctx, acct, acme.Order{Identifiers: []acme.Identifier{{Type: "dns", Value: "big.example.org"}}})
	if err != nil {
		t.Fatal(err)
	}
	authz, err := acmeClient.GetAuthorization(ctx, acct, order.Authorizations[0])
	if err != nil {
		t.Fatal(err)
	}
	for _, ch := range authz.Challenges {
		if ch.Type != acme.ChallengeTypeHTTP01 {
			continue
		}
		got, err := acmeClient.InitiateChallenge(ctx, acct, ch)
		if err != nil || got.Status != acme.StatusInvalid || got.Error == nil {
			t.Errorf("http-01 against a 200 MiB answer: %v, status %q; want it invalid", err, got.Status)
		}
		t.Logf("200 MiB challenge answer: %s (%v) after %v", got.Status, got.Error, time.Since(start).Round(time.Millisecond))
	}
	big.Close()

	// 1,000 connections that send nothing, held while certbot orders.
	var idle []net.Conn
	defer func() {
		for _, c := range idle {
			c.Close()
		}
	}()
	for range 1000 {
		c, err := net.Dial("tcp", u.Host)
		if err != nil {
			t.Fatalf("idle connection %d: %v", len(idle)+1, err)
		}
		idle = append(idle, c)
	}
	start = time.Now()
	if _, err := certbotOrder(certbot, dir, directory, rootFile, httpPort, "example.org"); err != nil {
		t.Errorf("beside 1,000 idle connections: %v", err)
	}
	t.Logf("certbot beside 1,000 idle connections took %v", time.Since(start).Round(time.Millisecond))

	peak := testtool.PeakRSS(t, strconv.Itoa(proc.Pid))
	t.Logf("ca serve peak RSS (VmHWM) %.1f MB", float64(peak)/1e6)
	if peak >= 200e6 {
		t.Errorf("ca serve peak RSS %.1f MB; want under 200 MB", float64(peak)/1e6)
	}
}

// zeros reads as an endless run of zero bytes.
type zeros struct{}

func (zeros) Read(p []byte) (int, error) {
	clear(p)
	return len(p), nil
}

func errOrStatus(resp *http.Response, err error) string {
	if err != nil {
		return err.Error()
	}
	return strings.TrimSpace(resp.Status)
}
