package localedge

import (
	"errors"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/scrapeplatform/platform/functions/gateway"
	"github.com/scrapeplatform/platform/shared/auth"
)

func TestBearerAuth(t *testing.T) {
	t.Parallel()
	v, err := auth.NewHS256(auth.HS256Config{Secret: []byte(testSecret)})
	if err != nil {
		t.Fatal(err)
	}
	a := BearerAuth{Verifier: v, Scopes: []string{"scrape:run"}}
	for _, tc := range []struct {
		name   string
		scopes []string
		want   error
	}{{"required scope", []string{"scrape:run"}, nil}, {"other scope", []string{"status:read"}, gateway.ErrInsufficientScope}} {
		tok, err := auth.IssueHS256([]byte(testSecret), auth.Claims{Subject: "alice", Scopes: tc.scopes}, time.Hour)
		if err != nil {
			t.Fatal(err)
		}
		r := httptest.NewRequest("GET", "/status", nil)
		r.Header.Set("Authorization", "Bearer "+tok)
		p, err := a.Authenticate(r)
		if !errors.Is(err, tc.want) || (err == nil && (p.Subject != "alice" || p.Method != "jwt")) {
			t.Errorf("%s: %+v %v, want %v", tc.name, p, err, tc.want)
		}
	}
	if _, err := a.Authenticate(httptest.NewRequest("GET", "/status", nil)); !errors.Is(err, auth.ErrNoCredentials) {
		t.Errorf("no header: %v", err)
	}
}
