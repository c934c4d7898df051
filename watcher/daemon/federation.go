package daemon

import (
	"crypto/tls"
	"errors"
	"slices"

	"github.com/xmppcert/xmppcert/acme"
	"github.com/xmppcert/xmppcert/watcher/config"
)

// ourCertificate is the current certificate and key of the lineage
// holding watch.from (the host itself, or the host of the component), or
// nil when none does. Each sweep presents it to the s2s peers it probes
// as our domain's, so that what each peer does with our certificate
// (accepts it by SASL EXTERNAL, refuses it, falls back to dialback) is
// seen rather than predicted, and a peer that stops accepting it is an
// external-lost alert.
func (d *Daemon) ourCertificate(cfg *config.Config) *tls.Certificate {
	from := cfg.Watch.From
	i := slices.IndexFunc(cfg.Hosts, func(h config.Host) bool {
		return h.Domain == from || slices.Contains(h.Components, from)
	})
	if from == "" || i < 0 {
		return nil
	}
	l, err := d.engineFor(cfg).Store.Load(cfg.Hosts[i].Domain)
	if err != nil {
		if !errors.Is(err, acme.ErrNoLineage) {
			d.log.Warn("reading our certificate for the s2s probes; peers are probed without one", "lineage", cfg.Hosts[i].Domain, "error", err.Error())
		}
		return nil
	}
	return l.TLSCertificate()
}
