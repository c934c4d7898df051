// Package testct runs a real Certificate Transparency log for tests:
// TesseraCT (github.com/transparency-dev/tesseract) with its POSIX
// storage, the static-ct-api log that needs no database, built from the
// module proxy at a pinned version. Its submission endpoints (add-chain,
// add-pre-chain) are TesseraCT's own; its monitoring prefix (checkpoint,
// tiles) is served from the storage directory, as a deployment serves
// it with any static web server.
package testct

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/xmppcert/xmppcert/internal/testtool"
)

// tesseract is the TesseraCT release the tests run.
const tesseract = "github.com/transparency-dev/tesseract/cmd/tesseract/posix@v0.1.1"

var (
	buildOnce sync.Once
	binary    string
	buildErr  error
	buildOut  []byte
)

// build installs TesseraCT's POSIX server once per test process, into
// a directory of the user's cache named by the version (kept, like the
// module cache: the next run installs over it, from the build cache).
func build() (string, error) {
	buildOnce.Do(func() {
		cache, err := os.UserCacheDir()
		if err != nil {
			cache = os.TempDir()
		}
		dir := filepath.Join(cache, "xmppcert-tests", strings.ReplaceAll(strings.TrimPrefix(tesseract, "github.com/transparency-dev/"), "/", "_"))
		if err := os.MkdirAll(dir, 0o700); err != nil {
			buildErr = err
			return
		}
		cmd := exec.Command("go", "install", tesseract)
		cmd.Env = append(os.Environ(), "GOBIN="+dir)
		buildOut, buildErr = cmd.CombinedOutput()
		binary = filepath.Join(dir, "posix")
	})
	return binary, buildErr
}

// Log is a running TesseraCT.
type Log struct {
	// SubmitURL is where add-chain and add-pre-chain are (TesseraCT's
	// HTTP endpoint); MonitoringURL the static-ct-api monitoring prefix.
	SubmitURL, MonitoringURL string
	dir                      string
	out                      *testtool.LockedBuffer
}

// Start runs TesseraCT accepting chains to roots, until the test ends.
// It skips in -short mode, and when the server cannot be built (no
// module proxy) it skips, or fails in CI.
func Start(t *testing.T, roots ...*x509.Certificate) *Log {
	t.Helper()
	testtool.SkipShort(t, "it builds and runs TesseraCT")
	bin, err := build()
	if err != nil {
		msg := fmt.Sprintf("building TesseraCT (go install %s) needs the Go module proxy: %v\n%s", tesseract, err, buildOut)
		if os.Getenv("CI") != "" {
			t.Fatal(msg)
		}
		t.Skip(msg)
	}
	dir := t.TempDir()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	der, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	keyFile, rootsFile := filepath.Join(dir, "log.key"), filepath.Join(dir, "roots.pem")
	var pemRoots bytes.Buffer
	for _, r := range roots {
		pem.Encode(&pemRoots, &pem.Block{Type: "CERTIFICATE", Bytes: r.Raw})
	}
	for f, data := range map[string][]byte{keyFile: pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: der}), rootsFile: pemRoots.Bytes()} {
		if err := os.WriteFile(f, data, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	storage := filepath.Join(dir, "log")
	port := testtool.FreePort(t)
	l := &Log{SubmitURL: "http://127.0.0.1:" + strconv.Itoa(port), dir: storage, out: &testtool.LockedBuffer{}}
	cmd := exec.Command(bin, "--private_key="+keyFile, "--origin=127.0.0.1/log", "--storage_dir="+storage, "--roots_pem_file="+rootsFile,
		"--http_endpoint=127.0.0.1:"+strconv.Itoa(port), "--checkpoint_interval=100ms", "--batch_max_age=50ms")
	cmd.Stdout, cmd.Stderr = l.out, l.out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cmd.Process.Kill()
		cmd.Wait()
		if t.Failed() {
			t.Logf("TesseraCT log:\n%s", l.out.String())
		}
	})
	files := httptest.NewServer(http.FileServer(http.Dir(storage)))
	t.Cleanup(files.Close)
	l.MonitoringURL = files.URL + "/"
	deadline := time.Now().Add(time.Minute)
	for {
		if _, err := os.Stat(filepath.Join(storage, "checkpoint")); err == nil {
			if resp, err := http.Get(l.SubmitURL + "/ct/v1/get-roots"); err == nil {
				resp.Body.Close()
				return l
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("TesseraCT did not start in a minute:\n%s", l.out.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// Add submits a chain (leaf first, DER): add-chain, or add-pre-chain
// for a precertificate, and waits until the log's checkpoint includes
// it.
func (l *Log) Add(t *testing.T, precert bool, chain ...[]byte) {
	t.Helper()
	body, _ := json.Marshal(map[string][][]byte{"chain": chain})
	path := "/ct/v1/add-chain"
	if precert {
		path = "/ct/v1/add-pre-chain"
	}
	resp, err := http.Post(l.SubmitURL+path, "application/json", bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		var b bytes.Buffer
		b.ReadFrom(resp.Body)
		t.Fatalf("%s: HTTP %d: %s", path, resp.StatusCode, b.String())
	}
	var sct struct {
		Extensions []byte `json:"extensions"`
	}
	json.NewDecoder(resp.Body).Decode(&sct)
	// The SCT's leaf_index extension (static-ct-api): type 0, length
	// 5, the index in 40 bits.
	e := sct.Extensions
	if len(e) != 8 || e[0] != 0 {
		t.Fatalf("%s: SCT extensions %x hold no leaf index", path, e)
	}
	index := uint64(e[3])<<32 | uint64(e[4])<<24 | uint64(e[5])<<16 | uint64(e[6])<<8 | uint64(e[7])
	l.WaitSize(t, index+1)
}

// WaitSize waits until the checkpoint counts at least n entries.
func (l *Log) WaitSize(t *testing.T, n uint64) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for ctx.Err() == nil {
		if b, err := os.ReadFile(filepath.Join(l.dir, "checkpoint")); err == nil {
			lines := strings.SplitN(string(b), "\n", 3)
			if len(lines) > 1 {
				if size, err := strconv.ParseUint(lines[1], 10, 64); err == nil && size >= n {
					return
				}
			}
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf("TesseraCT's checkpoint did not reach %d entries in 30 s:\n%s", n, l.out.String())
}
