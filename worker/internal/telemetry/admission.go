package telemetry

import "github.com/prometheus/client_golang/prometheus"

// AdmissionStates are the admission controller's states (admission.State), each a series of
// scraping_worker_admission_state.
var AdmissionStates = []string{"growing", "holding", "backing_off"}

// Admission records the admission controller's decisions.
type Admission struct {
	capacity prometheus.Gauge
	state    *prometheus.GaugeVec
}

// NewAdmission registers the admission metrics with reg.
func NewAdmission(reg prometheus.Registerer) *Admission {
	r := registrar{reg}
	a := &Admission{
		capacity: r.gauge("scraping_worker_capacity", "Scrapes this worker takes at once now: the admission controller's capacity, applied as the consumer's prefetch (between WORKER_MIN_CONCURRENCY and WORKER_CONCURRENCY)."),
		state:    r.gaugeVec("scraping_worker_admission_state", "The admission controller's last decision: 1 for the current state (growing, holding, backing_off), 0 for the others.", "state"),
	}
	for _, s := range AdmissionStates {
		a.state.WithLabelValues(s)
	}
	return a
}

// Set records a capacity and the state that led to it.
func (a *Admission) Set(capacity int, state string) {
	a.capacity.Set(float64(capacity))
	for _, s := range AdmissionStates {
		v := 0.0
		if s == state {
			v = 1
		}
		a.state.WithLabelValues(s).Set(v)
	}
}
