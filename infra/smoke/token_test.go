package smoke

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

// TestMachineClientToken: the grant as Cognito's /oauth2/token endpoint expects it: a form POST with
// grant_type=client_credentials and the scope, the client's credentials as HTTP Basic authentication.
func TestMachineClientToken(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		id, secret, ok := r.BasicAuth()
		if r.Method != http.MethodPost || r.URL.Path != "/oauth2/token" || !ok || id != "client-1" || secret != "s3cret" {
			http.Error(w, `{"error":"invalid_client"}`, http.StatusUnauthorized)
			return
		}
		if err := r.ParseForm(); err != nil || r.Form.Get("grant_type") != "client_credentials" || r.Form.Get("scope") != "scraping/scrape" {
			http.Error(w, `{"error":"invalid_request"}`, http.StatusBadRequest)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(map[string]any{"access_token": "eyJ.token", "token_type": "Bearer", "expires_in": 3600})
	}))
	defer srv.Close()
	m := MachineClient{TokenURL: srv.URL + "/oauth2/token", ClientID: "client-1", ClientSecret: "s3cret", Scopes: []string{"scraping/scrape"}}
	tok, err := m.Token(context.Background(), srv.Client())
	if err != nil || tok != "eyJ.token" {
		t.Fatalf("token %q, %v", tok, err)
	}
	m.ClientSecret = "wrong"
	if _, err := m.Token(context.Background(), srv.Client()); err == nil || !strings.Contains(err.Error(), "invalid_client") {
		t.Fatalf("a wrong secret: %v", err)
	}
}
