package auth_test

import (
	"context"
	"fmt"
	"time"

	"github.com/scrapeplatform/platform/shared/auth"
)

// Mint an HS256 token (as cmd/devtoken does) and verify it (as the local gateway does).
func Example() {
	secret := []byte("an-example-secret-of-at-least-32-bytes")
	token, err := auth.IssueHS256(secret, auth.Claims{Subject: "alice", Scopes: []string{"scrape:run"}}, time.Hour)
	if err != nil {
		panic(err)
	}
	v, err := auth.NewHS256(auth.HS256Config{Secret: secret})
	if err != nil {
		panic(err)
	}
	claims, err := v.Verify(context.Background(), token)
	if err != nil {
		panic(err)
	}
	fmt.Println(claims.Subject, claims.HasScope("scrape:run"), claims.HasScope("scrape:admin"))

	// A token signed with another key does not verify.
	other, _ := auth.IssueHS256([]byte("another-secret-of-at-least-32-bytes!!"), auth.Claims{Subject: "mallory"}, time.Hour)
	_, err = v.Verify(context.Background(), other)
	fmt.Println(err != nil)
	// Output:
	// alice true false
	// true
}
