package lifecycle

import (
	"crypto/x509"
	"errors"
	"fmt"
	"time"

	"github.com/xmppcert/xmppcert/acme"
	"github.com/xmppcert/xmppcert/acme/localca"
)

// Engine runs the lifecycle of the lineages in one store. The zero
// values of its optional fields are the production defaults; tests set
// Now and Open.
type Engine struct {
	// Store holds the lineages and their records: acme.DiskStore on one
	// machine.
	Store acme.Store
	// StateDir is this machine's state directory, which holds what is
	// not a lineage: the embedded CA, and the ACME accounts unless
	// Accounts keeps them.
	StateDir string
	// Accounts keeps the ACME accounts: acmeca.DiskAccounts in StateDir
	// when nil. A cluster's store shares them among its nodes.
	Accounts acme.AccountStore
	// OrderSlots, when set, caps the ACME orders open at once per
	// account (a cluster's, shared among its nodes).
	OrderSlots acme.OrderSlots
	// CAMaterial, when set, keeps the embedded CA's material for a
	// cluster: the CA the engine issues from is the cluster's.
	CAMaterial CAMaterialStore
	// POSHNodes, when set, keeps what each node of a cluster serves as
	// a lineage's POSH documents: a staged certificate goes live only
	// once every live node's documents have listed it for their
	// lifetime.
	POSHNodes POSHNodes
	// LocalCALead, when set (the daemon of a cluster's node), keeps the
	// renewals and first issuances the embedded CA signs on the node
	// that leads it: it returns whether this node leads, and otherwise
	// the leading node's name ("" when none is known). Commands run by
	// hand or by cron issue wherever they run.
	LocalCALead func() (here bool, leader string)
	// Layout, when set, is this machine's certbot layout apart from
	// Store (a cluster node's state directory): a lineage is written
	// into it before it is deployed, and its hooks are given its path
	// there as RENEWED_LINEAGE.
	Layout *acme.DiskStore
	// Now is the clock; time.Now when nil.
	Now func() time.Time
	// Open returns the Issuer for a request, the roots its certificates
	// are checked against and a release function (OpenIssuer when nil).
	Open func(state string, req acme.Request, o IssueOptions) (acme.Issuer, *x509.CertPool, func(), error)
	// Events receives what the engine did, in order; nil discards them.
	// It is called synchronously and must not block.
	Events func(Event)
	// ServeGrace is how long a served check after a deploy waits for
	// every endpoint to present the version (DefaultServeGrace when
	// zero).
	ServeGrace time.Duration
}

// OnDisk returns the engine of one machine: its lineages, CA and
// accounts in the state directory state.
func OnDisk(state string) *Engine {
	return &Engine{Store: acme.DiskStore{Dir: state}, StateDir: state}
}

// ClusterStore is a store that its nodes share: it keeps the lineages,
// the ACME accounts, the order slots, the embedded CA's material and
// what each node serves as POSH documents (acme/etcdstore).
type ClusterStore interface {
	acme.Store
	acme.AccountStore
	acme.OrderSlots
	CAMaterialStore
	POSHNodes
}

// POSHNodes keeps, per lineage, what each node of a cluster serves as
// its POSH documents (acme/etcdstore).
type POSHNodes interface {
	// Node is this node's name.
	Node() string
	// SavePOSHServed records what this node's documents of name list.
	SavePOSHServed(name string, s acme.POSHServed) error
	// POSHServed is the record of every live node that has one, by
	// node.
	POSHServed(name string) (map[string]acme.POSHServed, error)
}

// OnCluster returns the engine of a cluster's node: the lineages, the
// ACME accounts, the order slots, the nodes' POSH records and the
// embedded CA's material in the
// cluster's store, the embedded CA in the node's state directory state,
// and the lineages it deploys written into that directory's certbot
// layout.
func OnCluster(state string, s ClusterStore) *Engine {
	return &Engine{Store: s, StateDir: state, Accounts: s, OrderSlots: s, CAMaterial: s, POSHNodes: s, Layout: &acme.DiskStore{Dir: state}}
}

// OpenCA opens the embedded CA the engine issues from, creating it
// first if missing: the state directory's, which on a cluster's node is
// the cluster's CA.
func (e *Engine) OpenCA(opts localca.Options) (*localca.CA, error) {
	state, err := e.stateDir()
	if err != nil {
		return nil, err
	}
	if e.CAMaterial != nil {
		return openSharedCA(state, opts, e.CAMaterial)
	}
	return OpenCA(state, opts, true)
}

// issuesElsewhere says, for a request the embedded CA signs when another
// node leads it (LocalCALead), why this node leaves its issuance to
// that node.
func (e *Engine) issuesElsewhere(req acme.Request) (string, bool) {
	if e.LocalCALead == nil || !LocalCA(req) {
		return "", false
	}
	here, leader := e.LocalCALead()
	switch {
	case here:
		return "", false
	case leader == "":
		return "the embedded CA issues on the node that leads it, and none does yet", true
	default:
		return fmt.Sprintf("the embedded CA issues on the node that leads it: node %s", leader), true
	}
}

// now is the engine's clock.
func (e *Engine) now() time.Time {
	if e.Now != nil {
		return e.Now()
	}
	return time.Now()
}

// open opens the Issuer of req.
func (e *Engine) open(req acme.Request, o IssueOptions) (acme.Issuer, *x509.CertPool, func(), error) {
	o.accounts, o.orderSlots, o.caMaterial = e.Accounts, e.OrderSlots, e.CAMaterial
	if e.Open != nil {
		return e.Open(e.StateDir, req, o)
	}
	state, err := e.stateDir()
	if err != nil {
		return nil, nil, nil, err
	}
	return OpenIssuer(state, req, o)
}

// errNoStateDir is what the engine answers when it needs its state
// directory (the embedded CA, the ACME accounts) and was given none.
var errNoStateDir = errors.New("the lifecycle engine has no state directory for the CA and the ACME accounts")

// stateDir is e.StateDir, which must be set.
func (e *Engine) stateDir() (string, error) {
	if e.StateDir == "" {
		return "", errNoStateDir
	}
	return e.StateDir, nil
}

// Event names, as Event.Name carries them (certmagic's style: a noun
// and what happened to it).
const (
	EventIssued        = "cert_issued"
	EventRenewed       = "cert_renewed"
	EventStaged        = "cert_staged"
	EventPromoted      = "cert_promoted"
	EventRenewFailed   = "cert_renew_failed"
	EventDeployed      = "cert_deployed"
	EventDeployFailed  = "cert_deploy_failed"
	EventTLSAPublished = "tlsa_published"
	EventPOSHWritten   = "posh_written"
	// EventServedStale and EventServedForeign say that an endpoint of a
	// lineage presents an older version of it, or a key of no lineage,
	// after a deploy.
	EventServedStale   = "served_stale"
	EventServedForeign = "served_foreign"
	EventRevoked       = "cert_revoked"
)

// Event is one thing the engine did to a lineage.
type Event struct {
	// Name is one of the Event* constants.
	Name string
	// Lineage is the lineage's name, its host.
	Lineage string
	// Version is the lineage version the event concerns (0 when none).
	Version int
	// Target names a deploy target, for the deploy events.
	Target string
	// Err is what failed, for the failure events.
	Err error
}

// emit reports ev to the Events callback.
func (e *Engine) emit(ev Event) {
	if e.Events != nil {
		e.Events(ev)
	}
}
