package gateway

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"

	"github.com/scrapeplatform/platform/shared/contract"
)

// errorBody is the JSON body of every non-200 answer; every one carries the request's id.
type errorBody struct {
	Error     string        `json:"error"`
	ErrorCode contract.Code `json:"error_code"`
	RequestID string        `json:"request_id"`
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

// httpStatus is the one table from an error code to the HTTP status the gateway answers with. Codes a
// reply carries (script_error, …) are not here: a scrape that ran is answered 200.
func httpStatus(code contract.Code) int {
	switch code {
	case contract.CodeInvalidRequest:
		return http.StatusUnprocessableEntity
	case contract.CodeRequestTimeout:
		return http.StatusRequestTimeout
	case contract.CodeUnauthorized:
		return http.StatusUnauthorized
	case contract.CodeForbidden:
		return http.StatusForbidden
	case contract.CodeQueueFull:
		return http.StatusTooManyRequests
	case contract.CodeBrokerUnavailable, contract.CodeAuthUnavailable:
		return http.StatusServiceUnavailable
	case contract.CodeNoWorkerResponse, contract.CodeDeadlineExceeded:
		return http.StatusGatewayTimeout
	}
	return http.StatusInternalServerError
}

// callErrorCode classifies a failed call: the code the error carries, else one from its class (a transient
// failure is the broker's; the call's own deadline means no worker answered).
func callErrorCode(err error) contract.Code {
	if code := contract.CodeOf(err); code != "" {
		return code
	}
	switch contract.Classify(err) {
	case contract.Transient:
		return contract.CodeBrokerUnavailable
	case contract.Cancelled:
		if errors.Is(err, context.DeadlineExceeded) {
			return contract.CodeNoWorkerResponse
		}
	}
	return contract.CodeInternal
}
