package history

import (
	"encoding/json"
	"reflect"
	"testing"
	"time"

	"github.com/xmppcert/xmppcert/internal/tlsscan"
)

// A scan reads back as it was recorded (its suites described again from
// their numbers), in a few hundred bytes; the scan times read back per
// target; a later scan replaces the earlier.
func TestScans(t *testing.T) {
	s := newStore(t)
	yes := true
	c := func(id uint16) tlsscan.Cipher { return tlsscan.CipherByID(id) }
	aes := c(0xC02F)
	rep := tlsscan.Report{
		Versions: []tlsscan.Version{
			{Name: "SSLv2", Detail: "connection closed"}, {Name: "SSLv3", Detail: "protocol_version alert"},
			{Name: "TLSv1.0", Detail: "protocol_version alert"}, {Name: "TLSv1.1", Detail: "protocol_version alert"},
			{Name: "TLSv1.2", Offered: true, Cipher: &aes}, {Name: "TLSv1.3", Offered: true, Detail: "HelloRetryRequest for X25519"},
		},
		TLS12Ciphers:     []tlsscan.Cipher{c(0xC02F), c(0xC030), c(0xCCA8), c(0x009C)},
		TLS13Ciphers:     []tlsscan.Cipher{c(0x1301), c(0x1302), c(0x1303)},
		ServerPreference: &yes, NonForwardSecret: true, Connections: 41,
		Errors: []string{"TLSv1.1: no answer within 5s"}, Certificates: []tlsscan.CertificateSeen{},
	}
	at := time.Date(2026, 12, 6, 8, 0, 0, 0, time.UTC)
	if sc, err := s.Scan("ep"); err != nil || sc != nil {
		t.Fatalf("before any scan: %+v, %v", sc, err)
	}
	if err := s.RecordScans(map[string]time.Time{"target": at}, map[string]Scan{"ep": {At: at, Report: rep}}); err != nil {
		t.Fatal(err)
	}
	sc, err := s.Scan("ep")
	if err != nil || sc == nil {
		t.Fatalf("scan: %+v, %v", sc, err)
	}
	if !sc.At.Equal(at) || !reflect.DeepEqual(sc.Report, rep) {
		t.Errorf("read back %+v at %v;\nwant %+v at %v", sc.Report, sc.At, rep, at)
	}
	if v, _ := json.Marshal(storeScan(Scan{At: at, Report: rep})); len(v) > 512 {
		t.Errorf("a scan takes %d bytes: %s", len(v), v)
	}
	times, err := s.ScanTimes()
	if err != nil || len(times) != 1 || !times["target"].Equal(at) {
		t.Errorf("scan times %v, %v", times, err)
	}
	later := at.Add(24 * time.Hour)
	if err := s.RecordScans(map[string]time.Time{"target": later}, map[string]Scan{"ep": {At: later, Report: tlsscan.Report{}}}); err != nil {
		t.Fatal(err)
	}
	if sc, _ := s.Scan("ep"); sc == nil || !sc.At.Equal(later) || len(sc.Report.TLS12Ciphers) != 0 {
		t.Errorf("after a second scan: %+v", sc)
	}
}
