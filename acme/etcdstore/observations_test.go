package etcdstore

import (
	"bytes"
	"context"
	"fmt"
	"testing"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/xmppcert/xmppcert/internal/testetcd"
)

// TestObservations keeps a sweep's worth of observations, more than one
// transaction holds by count and by size, and reads them back in
// batches: what one member keeps, another reads.
func TestObservations(t *testing.T) {
	e := testetcd.Start(t)
	a, c, _ := newStore(t, e, "node0", sealing)
	b, _, _ := newStore(t, e, "node1", sealing)

	obs := make(map[string][]byte)
	var endpoints []string
	for i := range 300 {
		ep := fmt.Sprintf("d%05d.example c2s 192.0.2.1:5222", i)
		obs[ep] = []byte(fmt.Sprintf(`{"n":%d}`, i))
		endpoints = append(endpoints, ep)
	}
	// Six of the largest allowed: more than one transaction's bytes.
	for i := range 6 {
		ep := fmt.Sprintf("big%d.example s2s 192.0.2.2:5269", i)
		obs[ep] = bytes.Repeat([]byte{'a' + byte(i)}, MaxObservation)
		endpoints = append(endpoints, ep)
	}
	if err := a.SaveObservations(obs); err != nil {
		t.Fatal(err)
	}
	resp, err := c.Get(context.Background(), "/xmppcert/observations/", clientv3.WithPrefix(), clientv3.WithCountOnly())
	if err != nil || resp.Count != int64(len(obs)) {
		t.Fatalf("etcd holds %v observations (%v), want %d", resp.Count, err, len(obs))
	}

	got, err := b.Observations(append(endpoints, "unknown.example c2s 192.0.2.3:5222"))
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != len(obs) {
		t.Errorf("read %d observations, want %d (and none for the endpoint never kept)", len(got), len(obs))
	}
	for ep, want := range obs {
		if !bytes.Equal(got[ep], want) {
			t.Errorf("%s: read %d bytes, want %d", ep, len(got[ep]), len(want))
		}
	}

	err = a.SaveObservations(map[string][]byte{"huge.example c2s 192.0.2.4:5222": make([]byte, MaxObservation+1)})
	if err == nil {
		t.Error("an observation over MaxObservation was kept")
	}
	if none, err := b.Observations(nil); err != nil || len(none) != 0 {
		t.Errorf("no endpoints: %v, %v", none, err)
	}
}
