package daemon

import (
	"fmt"

	"github.com/xmppcert/xmppcert/acme/lifecycle"
	"github.com/xmppcert/xmppcert/watcher"
	"github.com/xmppcert/xmppcert/watcher/changes"
	"github.com/xmppcert/xmppcert/watcher/config"
	"github.com/xmppcert/xmppcert/watcher/probe"
)

// Vantage points ([[watch.vantage]]): every sweep probes each of our own
// targets through each vantage's SOCKS5 proxy as well, and compares the
// leaf key every endpoint presented there with the one it presented to
// the direct probe. A difference is what an interception on the way to
// our servers looks like from the side it does not touch (the 2023
// jabber.ru interception presented its own certificates to the whole
// internet except the hosting network).

// vantageJobs returns, for every own target and every vantage, a copy of
// the target's job that dials through the vantage, without the full
// scan (the comparison needs the leaf only) and without our client
// certificate; names[k] is the vantage of job k.
func vantageJobs(cfg *config.Config, targets []config.Target, jobs []probe.Job) (vjobs []probe.Job, names []string) {
	for i, t := range targets {
		if !t.Own {
			continue
		}
		for _, v := range cfg.Watch.Vantages {
			j := jobs[i]
			j.Options.Via = v.Via()
			j.Options.Full, j.Options.FullScan, j.Options.FullDeadline = false, nil, 0
			j.Options.ClientCert = nil
			vjobs = append(vjobs, j)
			names = append(names, v.Name)
		}
	}
	return vjobs, names
}

// vantageView is what one vantage saw of one endpoint.
type vantageView struct {
	vantage string
	// leaf is the leaf presented; nil when the vantage did not reach the
	// endpoint, failure then says why.
	leaf    *watcher.CertSummary
	failure string
}

// vantageViews are the views of a sweep's vantage probes, by endpoint
// key (watcher.EndpointKey.String: the addresses are resolved here, so
// they name the same endpoints as the direct probes).
type vantageViews map[string][]vantageView

// add records what vantage saw in r.
func (vv vantageViews) add(vantage string, r probe.Result) {
	for _, o := range watcher.Observations(r) {
		v := vantageView{vantage: vantage, failure: o.Failure}
		if o.Reachable && len(o.Chain) > 0 {
			v.leaf = &o.Chain[0]
		} else if v.failure == "" {
			v.failure = "no certificate"
		}
		key := o.Endpoint.String()
		vv[key] = append(vv[key], v)
	}
}

// conditions compares the direct observation o of one of our endpoints
// with every vantage's view of it: vantage-mismatch (critical) when a
// vantage was shown another key, unless that key is one of the
// lineage's own versions (a rollover seen at two moments);
// vantage-failed (warning) when a vantage could not reach an endpoint
// that is reachable here. An endpoint unreachable here is judged by the
// direct probe's own changes.
func (vv vantageViews) conditions(o watcher.Observation, own *ownLineages) []changes.Change {
	if !o.Reachable || len(o.Chain) == 0 {
		return nil
	}
	here := o.Chain[0]
	ep := o.Endpoint.String()
	var out []changes.Change
	for _, v := range vv[ep] {
		if v.leaf == nil {
			out = append(out, changes.Change{Kind: changes.VantageFailed, Severity: changes.Warning,
				Text: fmt.Sprintf("vantage %s could not reach this endpoint (%s); what it presents there is not compared", v.vantage, v.failure),
				Key:  ep + "|" + string(changes.VantageFailed) + "|" + v.vantage})
			continue
		}
		there := *v.leaf
		if there.SPKISHA256 == here.SPKISHA256 {
			continue
		}
		if name, ix, ok := own.lineage(o.Endpoint.Domain); ok {
			if status, _, _ := ix.Classify(name, there.SHA256, there.SPKISHA256); status != lifecycle.ServedForeign {
				continue
			}
		}
		out = append(out, changes.Change{Kind: changes.VantageMismatch, Severity: changes.Critical,
			Text: fmt.Sprintf("through vantage %s this endpoint presents another key (%s, SPKI SHA-256 %s) than here (%s, SPKI SHA-256 %s): something on one of the two paths answers in its place",
				v.vantage, there.Subject, there.SPKISHA256, here.Subject, here.SPKISHA256),
			Old: here.SPKISHA256, New: there.SPKISHA256,
			Key: ep + "|" + string(changes.VantageMismatch) + "|" + v.vantage + "|" + there.SPKISHA256})
	}
	return out
}
