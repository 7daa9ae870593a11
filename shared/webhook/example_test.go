package webhook_test

import (
	"bytes"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"time"

	"github.com/scrapeplatform/platform/shared/webhook"
)

// A receiver verifies each delivery with the secret the platform gave it, on the raw body, before it
// parses the JSON.
func Example() {
	secret, _ := webhook.ParseSecret("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw")

	receiver := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, err := io.ReadAll(io.LimitReader(r.Body, 1<<20))
		if err != nil {
			http.Error(w, "read", http.StatusBadRequest)
			return
		}
		if err := webhook.Verify([]webhook.Secret{secret}, r.Header, body, time.Now()); err != nil {
			http.Error(w, err.Error(), http.StatusUnauthorized)
			return
		}
		fmt.Printf("accepted %s: %s\n", r.Header.Get(webhook.HeaderID), body)
		w.WriteHeader(http.StatusNoContent)
	}))
	defer receiver.Close()

	// The sender's side.
	body := []byte(`{"request_id":"0b6f","status":"completed"}`)
	headers, _ := webhook.Sign(secret, "msg_0b6f", time.Now(), body)
	req, _ := http.NewRequest(http.MethodPost, receiver.URL, bytes.NewReader(body))
	for name, values := range headers {
		req.Header[name] = values
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		fmt.Println(err)
		return
	}
	resp.Body.Close()
	fmt.Println(resp.StatusCode)
	// Output:
	// accepted msg_0b6f: {"request_id":"0b6f","status":"completed"}
	// 204
}

// The default retry schedule, as a delivery that always fails would follow it (without jitter).
func ExampleSchedule_Plan() {
	fmt.Println(webhook.DefaultSchedule().Plan())
	// Output: [1s 5s 30s 2m0s 8m0s 32m0s 2h8m0s 4h0m0s 4h0m0s 4h0m0s 4h0m0s 4h0m0s]
}
