package web

import (
	"cmp"
	"context"
	"reflect"
	"slices"
	"sync"
	"time"

	"github.com/xmppcert/xmppcert/internal/oneline"
	"github.com/xmppcert/xmppcert/internal/safetext"
)

// DefaultPeerTimeout bounds each other member's answer when
// Cluster.Timeout is zero.
const DefaultPeerTimeout = 2 * time.Second

// maxReason bounds the runes of a reason shown for a member that did not
// answer.
const maxReason = 300

// Cluster is what the server of a cluster node needs to show the whole
// cluster on its dashboard and /metrics (README, "Cluster mode"): every
// other live member's endpoints, asked of its GET /api/endpoints (which
// answers that member's own endpoints only) with the server's own token.
type Cluster struct {
	// Node is this node's name; it is never asked over HTTP.
	Node string
	// Members lists the live members with the URL each advertises.
	Members func() ([]Member, error)
	// Timeout bounds each member's answer (DefaultPeerTimeout when zero).
	Timeout time.Duration
}

// Member is a live member of the cluster.
type Member struct {
	// Node is its name.
	Node string
	// URL is the base URL of its daemon's API; empty when it advertises
	// none.
	URL string
}

// nodeStatus is an endpoint's status with the member that watches it.
type nodeStatus struct {
	EndpointStatus
	// Node is the member that watches it ("" without a cluster); URL is
	// that member's base URL, "" for this node.
	Node, URL string
}

// Link is the endpoint's page, on the member that watches it: endpoint
// pages and acknowledgements are each member's own.
func (n nodeStatus) Link() string { return n.URL + "/endpoint/" + n.ID }

// memberState says whether a member answered for its endpoints.
type memberState struct {
	Node string
	Self bool
	Up   bool
	// Reason is why it did not answer: one line, escaped.
	Reason string
}

// clusterView is every endpoint the server shows: its own, and in a
// cluster each other member's, one row per endpoint.
type clusterView struct {
	Endpoints []nodeStatus
	// Members are the live members, sorted, this node among them; nil
	// without a cluster.
	Members []memberState
	// MembersUnknown is why the members could not be listed (one line,
	// escaped); only this node's endpoints are shown then.
	MembersUnknown string
}

// Down lists the members that did not answer.
func (v clusterView) Down() []memberState {
	var out []memberState
	for _, m := range v.Members {
		if !m.Up {
			out = append(out, m)
		}
	}
	return out
}

// view gathers the endpoints to show: this node's (an error when its
// history cannot be read), and in a cluster, when whole, every other
// live member's, asked concurrently, each bounded by Cluster.Timeout and
// the client's size bound. An endpoint that more than one member has recorded (the
// watching moved) is shown once, as the member that observed it last
// has it.
func (s *Server) view(ctx context.Context, whole bool) (clusterView, error) {
	var v clusterView
	own, err := s.Statuses()
	if err != nil {
		return v, err
	}
	c := s.opts.Cluster
	node := ""
	if c != nil {
		node = c.Node
	}
	for _, e := range own {
		v.Endpoints = append(v.Endpoints, nodeStatus{EndpointStatus: e, Node: node})
	}
	if c == nil || !whole {
		return v, nil
	}
	members, err := c.Members()
	if err != nil {
		v.MembersUnknown = reason(err)
		members = nil
	}
	if !slices.ContainsFunc(members, func(m Member) bool { return m.Node == c.Node }) {
		members = append(members, Member{Node: c.Node})
	}
	slices.SortFunc(members, func(a, b Member) int { return cmp.Compare(a.Node, b.Node) })
	timeout := c.Timeout
	if timeout <= 0 {
		timeout = DefaultPeerTimeout
	}
	answers := make([][]EndpointStatus, len(members))
	v.Members = make([]memberState, len(members))
	var wg sync.WaitGroup
	for i, m := range members {
		v.Members[i] = memberState{Node: safetext.Escape(m.Node), Self: m.Node == c.Node, Up: true}
		switch {
		case m.Node == c.Node:
		case m.URL == "":
			v.Members[i].Up, v.Members[i].Reason = false, "advertises no API URL"
		default:
			wg.Go(func() {
				client := &Client{BaseURL: m.URL, Token: s.opts.Token, Timeout: timeout}
				eps, err := client.Endpoints(ctx)
				if err != nil {
					v.Members[i].Up, v.Members[i].Reason = false, reason(err)
					return
				}
				escapeStrings(reflect.ValueOf(&eps).Elem())
				answers[i] = eps
			})
		}
	}
	wg.Wait()
	at := map[string]int{}
	for i, e := range v.Endpoints {
		at[e.Key] = i
	}
	for i, eps := range answers {
		for _, e := range eps {
			// The key and ID are made here: a member's own say-so is
			// not trusted to name or link anything.
			e.Key = e.Endpoint.String()
			e.ID = ID(e.Key)
			ns := nodeStatus{EndpointStatus: e, Node: v.Members[i].Node, URL: members[i].URL}
			j, seen := at[e.Key]
			switch {
			case !seen:
				at[e.Key] = len(v.Endpoints)
				v.Endpoints = append(v.Endpoints, ns)
			case e.Latest.LastSeen.After(v.Endpoints[j].Latest.LastSeen):
				v.Endpoints[j] = ns
			}
		}
	}
	slices.SortStableFunc(v.Endpoints, func(a, b nodeStatus) int { return cmp.Compare(a.Key, b.Key) })
	for _, m := range v.Members {
		if !m.Up {
			s.log.Debug("web: a cluster member did not answer for its endpoints", "node", m.Node, "reason", m.Reason)
		}
	}
	return v, nil
}

// reason is err's text as one short line, control characters escaped:
// what a member or etcd said is shown and logged, never acted on.
func reason(err error) string {
	return oneline.Clip(safetext.Escape(err.Error()), maxReason)
}

// escapeStrings replaces every string reachable from v (settable) with
// its escape (internal/safetext): what another member answers is shown
// and exported, never acted on.
func escapeStrings(v reflect.Value) {
	switch v.Kind() {
	case reflect.Pointer:
		if !v.IsNil() {
			escapeStrings(v.Elem())
		}
	case reflect.Struct:
		for i := range v.NumField() {
			if f := v.Field(i); f.CanSet() {
				escapeStrings(f)
			}
		}
	case reflect.Slice, reflect.Array:
		for i := range v.Len() {
			escapeStrings(v.Index(i))
		}
	case reflect.Map:
		for it := v.MapRange(); it.Next(); {
			e := reflect.New(v.Type().Elem()).Elem()
			e.Set(it.Value())
			escapeStrings(e)
			v.SetMapIndex(it.Key(), e)
		}
	case reflect.String:
		if v.CanSet() {
			v.SetString(safetext.Escape(v.String()))
		}
	}
}
