package daemon

import (
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
)

// health is what the daemon knows of its own work: the outcome of the
// last sweep and renewal run, for /healthz and /metrics.
type health struct {
	mu sync.Mutex
	// sweepErr is the error of the last sweep (the history could not be
	// written), nil after a sweep that recorded; failingSince is when
	// sweeps began to fail.
	sweepErr     error
	failingSince time.Time

	sweepDuration    prometheus.Gauge
	sweepLastSuccess prometheus.Gauge
	sweepsFailed     prometheus.Counter
	renewLastSuccess prometheus.Gauge
	renewalsFailed   prometheus.Counter
	lifecycleEvents  *prometheus.CounterVec
	httpsEvents      *prometheus.CounterVec
}

// newHealth registers the daemon's own metrics with reg, and the Go,
// process and build-info collectors.
func newHealth(reg prometheus.Registerer) (*health, error) {
	h := &health{
		sweepDuration: prometheus.NewGauge(prometheus.GaugeOpts{Name: "xmppcert_sweep_duration_seconds",
			Help: "How long the last sweep (probing every watched endpoint, recording, alerting) took."}),
		sweepLastSuccess: prometheus.NewGauge(prometheus.GaugeOpts{Name: "xmppcert_sweep_last_success_timestamp_seconds",
			Help: "When the last sweep whose observations were recorded ended, in Unix seconds (0: none yet)."}),
		sweepsFailed: prometheus.NewCounter(prometheus.CounterOpts{Name: "xmppcert_sweeps_failed_total",
			Help: "Sweeps whose observations could not be recorded in the history (disk full, I/O error)."}),
		renewLastSuccess: prometheus.NewGauge(prometheus.GaugeOpts{Name: "xmppcert_renewal_last_success_timestamp_seconds",
			Help: "When the last renewal run in which nothing failed ended, in Unix seconds (0: none yet)."}),
		renewalsFailed: prometheus.NewCounter(prometheus.CounterOpts{Name: "xmppcert_renewal_runs_failed_total",
			Help: "Renewal runs in which some lineage failed to issue, renew or publish its pins."}),
		lifecycleEvents: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "xmppcert_lifecycle_events_total",
			Help: "What the lifecycle engine did to lineages, by event (cert_issued, cert_renewed, cert_deploy_failed, ...)."}, []string{"event"}),
		httpsEvents: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "xmppcert_https_events_total",
			Help: "What certmagic did for the daemon's own HTTPS certificate, by event (cert_obtaining, cert_obtained, cert_failed, cached_managed_cert)."}, []string{"event"}),
	}
	// With the process's own: Go runtime, process (CPU, memory,
	// descriptors) and go_build_info, as every Go exporter has them.
	for _, c := range []prometheus.Collector{h.sweepDuration, h.sweepLastSuccess, h.sweepsFailed, h.renewLastSuccess, h.renewalsFailed, h.lifecycleEvents, h.httpsEvents,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}), collectors.NewBuildInfoCollector()} {
		if err := reg.Register(c); err != nil {
			return nil, fmt.Errorf("daemon: registering metrics: %w", err)
		}
	}
	return h, nil
}

// sweepDone records a sweep's outcome.
func (h *health) sweepDone(took time.Duration, err error, now time.Time) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.sweepDuration.Set(took.Seconds())
	if err != nil {
		h.sweepsFailed.Inc()
		if h.sweepErr == nil {
			h.failingSince = now
		}
		h.sweepErr = err
		return
	}
	h.sweepErr = nil
	h.sweepLastSuccess.Set(float64(now.Unix()))
}

// renewDone records a renewal run's outcome.
func (h *health) renewDone(err error, now time.Time) {
	if err != nil {
		h.renewalsFailed.Inc()
		return
	}
	h.renewLastSuccess.Set(float64(now.Unix()))
}

// errHistoryFailing is what /healthz says while sweeps cannot record: no
// path or system error, since /healthz answers anyone.
var errHistoryFailing = errors.New("the history cannot be written")

// check is /healthz's verdict: an error while the last sweep could not
// record its observations.
func (h *health) check() error {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.sweepErr != nil {
		return fmt.Errorf("%w since %s; see the daemon's log", errHistoryFailing, h.failingSince.UTC().Format(time.RFC3339))
	}
	return nil
}
