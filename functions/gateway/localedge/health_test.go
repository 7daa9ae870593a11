package localedge

import (
	"context"
	"encoding/json"
	"log/slog"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/scrapeplatform/platform/shared/brokertest"
	"github.com/scrapeplatform/platform/shared/testlog"
)

// TestHealthSaysWhyTheBrokerIsDisconnected runs the gateway against the real broker with a wrong password:
// GET /health is 503 with rabbitmq disconnected, and says why in words, without the password.
func TestHealthSaysWhyTheBrokerIsDisconnected(t *testing.T) {
	t.Parallel()
	u, err := url.Parse(brokertest.URL(t))
	if err != nil {
		t.Fatal(err)
	}
	u.User = url.UserPassword(u.User.Username(), "not-the-password")
	cfg, err := LoadConfig(func(k string) string {
		return map[string]string{"RABBITMQ_URL": u.String(), "JWT_SECRET": testSecret}[k]
	})
	if err != nil {
		t.Fatal(err)
	}
	h, client, err := Build(cfg, "test-wrong-password", testlog.New(t, slog.LevelInfo), nil)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { _ = client.Run(ctx); close(done) }()
	t.Cleanup(func() { cancel(); <-done })
	for client.Problem() == nil { // the first attempt takes the broker's silent-close delay
		time.Sleep(20 * time.Millisecond)
	}
	w := httptest.NewRecorder()
	h.ServeHTTP(w, httptest.NewRequest("GET", "/health", nil))
	var m struct {
		Status     string            `json:"status"`
		Components map[string]string `json:"components"`
		Reasons    map[string]string `json:"reasons"`
	}
	if err := json.Unmarshal(w.Body.Bytes(), &m); err != nil {
		t.Fatalf("body %q: %v", w.Body.String(), err)
	}
	why := m.Reasons["rabbitmq"]
	if w.Code != 503 || m.Status != "unhealthy" || m.Components["rabbitmq"] != "disconnected" ||
		!strings.Contains(why, "403") || !strings.Contains(why, "user name or password") {
		t.Fatalf("health: %d %s", w.Code, w.Body.String())
	}
	if strings.Contains(w.Body.String(), "not-the-password") || strings.Contains(w.Body.String(), u.Host) {
		t.Fatalf("health shows the password or the broker's address: %s", w.Body.String())
	}
}
