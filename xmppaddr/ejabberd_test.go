package xmppaddr_test

import (
	"bytes"
	"crypto/x509"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/xmppcert/xmppcert/internal/testpki"
	"github.com/xmppcert/xmppcert/internal/testtool"
	. "github.com/xmppcert/xmppcert/xmppaddr"
)

// TestEjabberdDifferential runs ejabberd's own s2s identity check
// (xmpp_stream_pkix:authenticate/2 from the installed p1_xmpp, through
// escript) over the identity vectors, and asserts that the "ejabberd"
// prediction of Verify equals what that code decided, every time.
func TestEjabberdDifferential(t *testing.T) {
	escript := requireEjabberd(t)
	dir := t.TempDir()
	vectors := identityVectors()
	leaves := make([]*x509.Certificate, len(vectors))
	var input bytes.Buffer
	for i, v := range vectors {
		leaves[i], _ = root.Leaf(v.leaf)
		file := filepath.Join(dir, fmt.Sprintf("%02d.pem", i))
		if err := os.WriteFile(file, testpki.PEM(leaves[i]), 0o644); err != nil {
			t.Fatal(err)
		}
		fmt.Fprintf(&input, "%x\t%s\n", v.domain, file)
	}
	got := runHarness(t, &input, len(vectors), escript, "testdata/ejabberd_verify_identity.escript")
	agree, unjudged, crashes := 0, 0, 0
	for i, v := range vectors {
		if got[i] == "error" {
			unjudged++ // not a domain ejabberd's stream code would hand over
			continue
		}
		res, err := Verify([]*x509.Certificate{leaves[i]}, Options{Domain: v.domain, Service: ServiceServer, Roots: root.Pool(), CurrentTime: testpki.At})
		if err != nil {
			t.Fatalf("%s: %v", v.name, err)
		}
		pred := peerVerdict(t, res, "ejabberd")
		if ejabberd := got[i] == "true"; pred.Accepts != ejabberd {
			t.Errorf("%s, %q: predicted accepts=%v (%s); ejabberd's xmpp_stream_pkix says %s", v.name, v.domain, pred.Accepts, pred.Reason, got[i])
			continue
		}
		if crashed := strings.Contains(pred.Reason, "badarg"); crashed != (got[i] == "crash") {
			t.Errorf("%s, %q: predicted %q; ejabberd's xmpp_stream_pkix says %s", v.name, v.domain, pred.Reason, got[i])
			continue
		}
		if got[i] == "crash" {
			crashes++
		}
		agree++
	}
	t.Logf("ejabberd differential: %d comparable cases, %d agree (%d of them the check crashing on an XmppAddr); %d domains ejabberd would not accept as a stream's", len(vectors)-unjudged, agree, crashes, unjudged)
}

// peerVerdict returns the named peer's prediction in res.
func peerVerdict(t *testing.T, res *Result, peer string) PeerVerdict {
	t.Helper()
	for _, v := range res.Peers {
		if v.Peer == peer {
			return v
		}
	}
	t.Fatalf("no %s prediction for %s %s", peer, res.Service, res.References[0].Value)
	return PeerVerdict{}
}

// requireEjabberd returns escript, or skips (fails in CI) when it or
// ejabberd's xmpp_stream_pkix is missing.
func requireEjabberd(t *testing.T) string {
	escript := testtool.Require(t, "escript", "erlang-base")
	if m, _ := filepath.Glob("/usr/lib/erlang/lib/p1_xmpp-*/ebin/xmpp_stream_pkix.beam"); len(m) == 0 {
		testtool.Require(t, "ejabberdctl", "ejabberd")
		t.Fatal("ejabberd is installed but xmpp_stream_pkix.beam is not under /usr/lib/erlang/lib/p1_xmpp-*/ebin")
	}
	return escript
}

// TestEjabberdDifferentialLimbo runs ejabberd's own identity check over
// the leaf certificate and DNS peer name of every x509-limbo SERVER case
// whose leaf crypto/x509 parses, and compares the port's answer with it.
// Only the identity check is compared; the chains are not the point.
func TestEjabberdDifferentialLimbo(t *testing.T) {
	escript := requireEjabberd(t)
	queries := limboLeaves(t)
	var input bytes.Buffer
	for _, q := range queries {
		fmt.Fprintf(&input, "%x\t%s\n", q.host, q.file)
	}
	got := runHarness(t, &input, len(queries), escript, "testdata/ejabberd_verify_identity.escript")
	agree, unjudged := 0, 0
	for i, q := range queries {
		if got[i] == "error" {
			unjudged++
			continue
		}
		if port := EjabberdAuthenticate(q.host, q.leaf); port != got[i] {
			t.Errorf("%s, %q: the port says %s, ejabberd %s", q.id, q.host, port, got[i])
			continue
		}
		agree++
	}
	t.Logf("ejabberd differential over x509-limbo: %d comparable cases, %d agree; %d ejabberd could not judge", len(queries)-unjudged, agree, unjudged)
}
