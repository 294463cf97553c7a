package serve

import (
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
)

// metrics are the server's Prometheus series (docs/SERVING.md lists them).
type metrics struct {
	reg        *prometheus.Registry
	rpcSeconds *prometheus.HistogramVec // method
	stage      *prometheus.HistogramVec // method, stage
	errors     *prometheus.CounterVec   // method, code
	inFlight   prometheus.Gauge
	rejected   *prometheus.CounterVec // method
	version    *prometheus.GaugeVec   // snapshot, model
	reloads    *prometheus.CounterVec // outcome
	defaulted  *prometheus.CounterVec // feature
	unknown    *prometheus.CounterVec // kind
	// A root's fan-out (serve --role=root).
	merged    prometheus.Counter
	refetches prometheus.Counter
	partial   *prometheus.CounterVec // method
}

func newMetrics() *metrics {
	lat := []float64{50e-6, 100e-6, 250e-6, 500e-6, 1e-3, 2e-3, 5e-3, 10e-3, 20e-3, 50e-3, 100e-3, 250e-3, 1}
	m := &metrics{
		reg: prometheus.NewRegistry(),
		rpcSeconds: prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "tandem_rpc_duration_seconds",
			Help: "Latency of served RPCs, admitted ones, by method.", Buckets: lat}, []string{"method"}),
		stage: prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "tandem_stage_duration_seconds",
			Help: "Latency of each stage of Retrieve and Rank.", Buckets: lat}, []string{"method", "stage"}),
		errors: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "tandem_rpc_errors_total",
			Help: "RPCs that ended in an error, by method and gRPC code."}, []string{"method", "code"}),
		inFlight: prometheus.NewGauge(prometheus.GaugeOpts{Name: "tandem_in_flight",
			Help: "Retrieve and Rank calls being served now."}),
		rejected: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "tandem_rejected_total",
			Help: "Calls refused with ResourceExhausted because every admission slot was taken."}, []string{"method"}),
		version: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "tandem_served_version",
			Help: "1 for the snapshot and model version being served."}, []string{"snapshot", "model"}),
		reloads: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "tandem_reloads_total",
			Help: "Reload attempts by outcome (ok, failed, rollback)."}, []string{"outcome"}),
		defaulted: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "tandem_defaulted_features_total",
			Help: "Request features left out and given their schema default, by feature."}, []string{"feature"}),
		unknown: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "tandem_unknown_ids_total",
			Help: "Ids a request named that the snapshot does not know (ad: Rank candidates, item: events and context items)."}, []string{"kind"}),
		merged: prometheus.NewCounter(prometheus.CounterOpts{Name: "tandem_shard_merged_hits_total",
			Help: "Hits the shards returned to this root's Retrieve calls, refetches included: the merge volume."}),
		refetches: prometheus.NewCounter(prometheus.CounterOpts{Name: "tandem_shard_refetches_total",
			Help: "Shard searches asked again with a doubled limit because the first could have hidden a top-k hit."}),
		partial: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "tandem_partial_answers_total",
			Help: "Answers with coverage below 1 (--allow-partial and a shard that failed), by method."}, []string{"method"}),
	}
	m.reg.MustRegister(m.rpcSeconds, m.stage, m.errors, m.inFlight, m.rejected, m.version, m.reloads, m.defaulted, m.unknown,
		m.merged, m.refetches, m.partial,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return m
}
