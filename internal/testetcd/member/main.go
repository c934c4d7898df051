// Command member runs one etcd member (go.etcd.io/etcd/server/v3/embed,
// the version of the client xmppcert uses) in its own process, for the
// tests that stop, kill and restart the members of a cluster
// (internal/testetcd.StartCluster). It is a test fixture, not part of
// xmppcert.
//
//	member -name NAME -dir DIR -client URL -peer URL -cluster NAME=URL,... -state new|existing
//
// It prints "ready" once the member serves, and runs until it is killed
// or receives SIGTERM.
package main

import (
	"flag"
	"fmt"
	"net/url"
	"os"
	"os/signal"
	"syscall"
	"time"

	"go.etcd.io/etcd/server/v3/embed"
	"go.uber.org/zap"
)

func main() {
	name := flag.String("name", "", "member name")
	dir := flag.String("dir", "", "data directory")
	client := flag.String("client", "", "client URL")
	peer := flag.String("peer", "", "peer URL")
	cluster := flag.String("cluster", "", "initial cluster: NAME=PEERURL,...")
	state := flag.String("state", "new", "initial cluster state: new or existing")
	flag.Parse()
	cu, err := url.Parse(*client)
	if err != nil {
		fail(err)
	}
	pu, err := url.Parse(*peer)
	if err != nil {
		fail(err)
	}
	cfg := embed.NewConfig()
	cfg.Name, cfg.Dir = *name, *dir
	cfg.ZapLoggerBuilder = embed.NewZapLoggerBuilder(zap.NewNop())
	cfg.ListenClientUrls, cfg.AdvertiseClientUrls = []url.URL{*cu}, []url.URL{*cu}
	cfg.ListenPeerUrls, cfg.AdvertisePeerUrls = []url.URL{*pu}, []url.URL{*pu}
	cfg.InitialCluster, cfg.ClusterState = *cluster, *state
	// Loopback: a short heartbeat and election, as a test wants.
	cfg.TickMs, cfg.ElectionMs = 50, 500
	e, err := embed.StartEtcd(cfg)
	if err != nil {
		fail(err)
	}
	select {
	case <-e.Server.ReadyNotify():
		fmt.Println("ready")
	case <-time.After(60 * time.Second):
		fail(fmt.Errorf("not ready within 60 s"))
	}
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGTERM, os.Interrupt)
	select {
	case <-sig:
	case err := <-e.Err():
		fail(err)
	}
	e.Close()
}

func fail(err error) {
	fmt.Fprintln(os.Stderr, "member:", err)
	os.Exit(1)
}
