package daemon

import (
	"crypto/sha256"
	"encoding/binary"
	"encoding/json"
	"slices"

	"github.com/xmppcert/xmppcert/watcher"
	"github.com/xmppcert/xmppcert/watcher/config"
)

// sharedWatch is what sharded watching needs of a cluster's store
// (acme/etcdstore): the live members, and each endpoint's latest
// observation, kept for the member that watches it next. A sweep reads
// and writes those in batches: one request per endpoint would make a
// node's first sweep of 10,000 endpoints wait on 20,000 round trips.
type sharedWatch interface {
	Members() ([]string, error)
	SaveObservations(obs map[string][]byte) error
	Observations(endpoints []string) (map[string][]byte, error)
}

// sharedWatchOf is the cluster's store when cfg has [cluster] and the
// engine's store is one; nil otherwise.
func (d *Daemon) sharedWatchOf(cfg *config.Config) sharedWatch {
	if cfg.Cluster == nil || d.deps.Engine == nil {
		return nil
	}
	sw, _ := d.deps.Engine.Store.(sharedWatch)
	return sw
}

// owner is the member that watches the target key among members:
// rendezvous (highest random weight) hashing, so that a member that
// leaves moves only its own share, spread over the others, and one that
// joins takes a share from each.
func owner(key string, members []string) string {
	var best string
	var bestWeight uint64
	for _, m := range members {
		sum := sha256.Sum256([]byte(m + "\x00" + key))
		if w := binary.BigEndian.Uint64(sum[:8]); best == "" || w > bestWeight {
			best, bestWeight = m, w
		}
	}
	return best
}

// share keeps the targets this node watches. Without a cluster it is
// all of them; in one, those that rendezvous hashing gives this node
// among the live members, read at each sweep (while etcd does not
// answer, among the members last read; all the targets when none ever
// was).
func (d *Daemon) share(cfg *config.Config, targets []config.Target) []config.Target {
	sw := d.sharedWatchOf(cfg)
	if sw == nil {
		return targets
	}
	members, err := sw.Members()
	d.mu.Lock()
	if err == nil && len(members) > 0 {
		if !slices.Equal(members, d.members) {
			d.log.Info("watching shared among the live members", "members", members)
		}
		d.members = members
	} else {
		members = d.members
	}
	d.mu.Unlock()
	if err != nil {
		d.log.Warn("the cluster's members are unknown; watching the share of the members last known", "error", err.Error(), "members", members)
	}
	if len(members) == 0 {
		return targets
	}
	var mine []config.Target
	for _, t := range targets {
		if owner(targetKey(t), members) == cfg.Cluster.NodeID {
			mine = append(mine, t)
		}
	}
	return mine
}

// freshInShare marks, observation by observation (perJob[i] being
// targets[i]'s), those of targets this node did not watch in its last
// sweep: another member may have watched them since. It remembers this
// sweep's targets for the next.
func (d *Daemon) freshInShare(targets []config.Target, perJob [][]watcher.Observation) []bool {
	var fresh []bool
	d.mu.Lock()
	defer d.mu.Unlock()
	last := d.lastShare
	d.lastShare = make(map[string]bool, len(targets))
	for i, t := range targets {
		key := targetKey(t)
		d.lastShare[key] = true
		for range perJob[i] {
			fresh = append(fresh, !last[key])
		}
	}
	return fresh
}

// handedOver is the latest observation that another member kept of each
// of endpoints, which this node did not watch in its last sweep; an
// endpoint none kept (or whose record cannot be read) has no entry.
func (d *Daemon) handedOver(sw sharedWatch, endpoints []string) map[string]*watcher.Observation {
	if len(endpoints) == 0 {
		return nil
	}
	kept, err := sw.Observations(endpoints)
	if err != nil {
		d.log.Warn("reading the endpoints' latest observations from the cluster", "endpoints", len(endpoints), "error", err.Error())
		return nil
	}
	out := make(map[string]*watcher.Observation, len(kept))
	for endpoint, b := range kept {
		var o watcher.Observation
		if err := json.Unmarshal(b, &o); err != nil {
			d.log.Warn("an endpoint's latest observation in the cluster does not decode", "endpoint", endpoint, "error", err.Error())
			continue
		}
		out[endpoint] = &o
	}
	return out
}

// handOver keeps obs, changed observations, as their endpoints' latest
// for the members that watch them next.
func (d *Daemon) handOver(sw sharedWatch, obs []watcher.Observation) {
	if len(obs) == 0 {
		return
	}
	batch := make(map[string][]byte, len(obs))
	for _, o := range obs {
		b, err := json.Marshal(o)
		if err != nil {
			d.log.Warn("keeping an endpoint's latest observation in the cluster", "endpoint", o.Endpoint.String(), "error", err.Error())
			continue
		}
		batch[o.Endpoint.String()] = b
	}
	if err := sw.SaveObservations(batch); err != nil {
		d.log.Warn("keeping the endpoints' latest observations in the cluster", "endpoints", len(batch), "error", err.Error())
	}
}
