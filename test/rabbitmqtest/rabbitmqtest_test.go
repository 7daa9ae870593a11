package rabbitmqtest

import (
	"context"
	"errors"
	"strings"
	"testing"
)

// The choice between the local broker, a container and a clear failure. The probes are stand-ins here;
// the real paths run in every integration suite of this module (here: the local broker).
func TestFind(t *testing.T) {
	t.Parallel()
	down := errors.New("connection refused")
	noDocker := errors.New("Cannot connect to the Docker daemon")
	started := Broker{URL: "amqp://guest:guest@127.0.0.1:32768/", PrometheusAddr: "127.0.0.1:32769", Origin: FromContainer}
	env := func(kv map[string]string) func(string) string { return func(k string) string { return kv[k] } }
	tests := []struct {
		name      string
		env       map[string]string
		brokerUp  bool
		dockerErr error
		want      Broker
		wantErr   []string
		started   bool
	}{
		{name: "default URL answers", brokerUp: true,
			want: Broker{URL: DefaultURL, PrometheusAddr: "127.0.0.1:15692", Origin: FromURL}},
		{name: "RABBITMQ_URL answers, metrics on its host", env: map[string]string{"RABBITMQ_URL": "amqp://u:p@broker.test:5673/v"}, brokerUp: true,
			want: Broker{URL: "amqp://u:p@broker.test:5673/v", PrometheusAddr: "broker.test:15692", Origin: FromURL}},
		{name: "RABBITMQ_PROMETHEUS_ADDR wins", env: map[string]string{"RABBITMQ_PROMETHEUS_ADDR": "127.0.0.1:25692"}, brokerUp: true,
			want: Broker{URL: DefaultURL, PrometheusAddr: "127.0.0.1:25692", Origin: FromURL}},
		{name: "no broker, Docker answers", dockerErr: nil, want: started, started: true},
		{name: "neither", env: map[string]string{"RABBITMQ_URL": "amqp://u:secret@127.0.0.1:5999/"}, dockerErr: noDocker,
			wantErr: []string{"none answers at RABBITMQ_URL=amqp://u:xxxxx@127.0.0.1:5999/", "connection refused", "Cannot connect to the Docker daemon", "apt-get install rabbitmq-server"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			probe := func(context.Context, string) error {
				if tt.brokerUp {
					return nil
				}
				return down
			}
			var didStart bool
			start := func(context.Context) (Broker, error) { didStart = true; return started, nil }
			got, err := find(t.Context(), env(tt.env), probe, func(context.Context) error { return tt.dockerErr }, start)
			if len(tt.wantErr) > 0 {
				if err == nil {
					t.Fatalf("find = %+v, want an error", got)
				}
				for _, w := range tt.wantErr {
					if !strings.Contains(err.Error(), w) {
						t.Errorf("error lacks %q:\n%v", w, err)
					}
				}
				if strings.Contains(err.Error(), "secret") {
					t.Errorf("error shows the password: %v", err)
				}
				return
			}
			if err != nil || got != tt.want || didStart != tt.started {
				t.Fatalf("find = %+v, %v (started %v), want %+v (started %v)", got, err, didStart, tt.want, tt.started)
			}
		})
	}
}

// Get on this machine: the suite's broker answers AMQP.
func TestGetFindsABroker(t *testing.T) {
	b := Get(t)
	if err := probeAMQP(t.Context(), b.URL); err != nil {
		t.Fatalf("%s broker %s does not answer: %v", b.Origin, redact(b.URL), err)
	}
}
