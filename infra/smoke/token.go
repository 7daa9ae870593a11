package smoke

import (
	"context"
	"fmt"
	"net/http"

	"golang.org/x/oauth2"
	"golang.org/x/oauth2/clientcredentials"
)

// MachineClient is an OAuth 2.0 client of the stage's identity provider that may use the
// client-credentials grant (the Cognito app client the stack creates: stack outputs TokenUrl and
// MachineClientId; its secret comes from cognito-idp:DescribeUserPoolClient).
type MachineClient struct {
	TokenURL     string
	ClientID     string
	ClientSecret string
	// Scopes to request; empty asks for every scope the client is allowed.
	Scopes []string
}

// Token mints an access token with the client-credentials grant. The smoke check and `make token
// STAGE=…` use it, so no long-lived token is stored anywhere.
func (m MachineClient) Token(ctx context.Context, hc *http.Client) (string, error) {
	cfg := clientcredentials.Config{
		ClientID: m.ClientID, ClientSecret: m.ClientSecret, TokenURL: m.TokenURL, Scopes: m.Scopes,
		// Cognito's token endpoint takes the client's credentials as HTTP Basic authentication.
		AuthStyle: oauth2.AuthStyleInHeader,
	}
	if hc != nil {
		ctx = context.WithValue(ctx, oauth2.HTTPClient, hc)
	}
	tok, err := cfg.Token(ctx)
	if err != nil {
		return "", fmt.Errorf("client-credentials token from %s: %w", m.TokenURL, err)
	}
	return tok.AccessToken, nil
}
