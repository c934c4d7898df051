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
// observation, kept for the member that watches it next.
type sharedWatch interface {
	Members() ([]string, error)
	SaveObservation(endpoint string, b []byte) error
	Observation(endpoint string) ([]byte, error)
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

// handedOver is the latest observation of an endpoint that another
// member kept, for an endpoint this node observes for the first time;
// nil when there is none (or it cannot be read).
func (d *Daemon) handedOver(sw sharedWatch, endpoint string) *watcher.Observation {
	b, err := sw.Observation(endpoint)
	if err != nil {
		d.log.Warn("reading an endpoint's latest observation from the cluster", "endpoint", endpoint, "error", err.Error())
		return nil
	}
	if b == nil {
		return nil
	}
	var o watcher.Observation
	if err := json.Unmarshal(b, &o); err != nil {
		d.log.Warn("an endpoint's latest observation in the cluster does not decode", "endpoint", endpoint, "error", err.Error())
		return nil
	}
	return &o
}

// handOver keeps o, a changed observation, as its endpoint's latest for
// the member that watches it next.
func (d *Daemon) handOver(sw sharedWatch, o watcher.Observation) {
	b, err := json.Marshal(o)
	if err == nil {
		err = sw.SaveObservation(o.Endpoint.String(), b)
	}
	if err != nil {
		d.log.Warn("keeping an endpoint's latest observation in the cluster", "endpoint", o.Endpoint.String(), "error", err.Error())
	}
}
