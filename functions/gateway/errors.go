package gateway

import (
	"encoding/json"
	"net/http"

	"github.com/scrapeplatform/platform/shared/contract"
)

// errorBody is the JSON body of every non-200 answer.
type errorBody struct {
	Error     string        `json:"error"`
	ErrorCode contract.Code `json:"error_code"`
	RequestID string        `json:"request_id,omitempty"`
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	enc := json.NewEncoder(w)
	enc.SetEscapeHTML(false)
	_ = enc.Encode(v)
}

func writeError(w http.ResponseWriter, status int, code contract.Code, msg, requestID string) {
	if status == http.StatusUnauthorized {
		w.Header().Set("WWW-Authenticate", `Bearer realm="scraping"`)
	}
	writeJSON(w, status, errorBody{Error: msg, ErrorCode: code, RequestID: requestID})
}
