package telemetry

import "github.com/prometheus/client_golang/prometheus"

// Broker records the worker's AMQP connections and the replies it could not publish. shared/broker takes
// plain callbacks (OnConnect, OnDisconnect, Settler.OnReplyFailure); Broker's methods are those callbacks.
type Broker struct {
	connected     *prometheus.GaugeVec
	connects      *prometheus.CounterVec
	replyFailures prometheus.Counter
}

// NewBroker registers the broker metrics with reg.
func NewBroker(reg prometheus.Registerer) *Broker {
	r := registrar{reg}
	return &Broker{
		connected:     r.gaugeVec("scraping_broker_connected", "1 while the named AMQP connection (consume, publish) is up.", "connection"),
		connects:      r.counterVec("scraping_broker_connects_total", "AMQP connections established, by connection; more than one means reconnects.", "connection"),
		replyFailures: r.counter("scraping_reply_publish_failures_total", "Replies that could not be published before the caller's deadline (retried until then; then dropped and the task acked)."),
	}
}

// Connection returns the OnConnect and OnDisconnect callbacks of the AMQP connection called name
// ("consume", "publish"); its scraping_broker_connected series starts at 0.
func (m *Broker) Connection(name string) (onConnect func(), onDisconnect func(error)) {
	m.connected.WithLabelValues(name).Set(0)
	return func() {
			m.connected.WithLabelValues(name).Set(1)
			m.connects.WithLabelValues(name).Inc()
		}, func(error) {
			m.connected.WithLabelValues(name).Set(0)
		}
}

// ReplyFailed counts a reply that could not be published (broker.Settler.OnReplyFailure).
func (m *Broker) ReplyFailed(error) { m.replyFailures.Inc() }
