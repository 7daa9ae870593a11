package gateway

import (
	"context"
	"crypto/rand"
	"fmt"
	"net/http"
)

// NewRequestID returns a random UUID (version 4): the id of a request, in its answer, logs and task. The
// local server's own early answers (over the connection cap, request smuggling) use it too, so every error
// body names its request.
func NewRequestID() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	return fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:16])
}

// requestIDKey is the context key of the request's id.
type requestIDKey struct{}

// withRequestID returns r carrying id. Handler.ServeHTTP gives every request one, so that every answer,
// 401 and 403 included, names it (and a scrape's task carries the same id).
func withRequestID(r *http.Request, id string) *http.Request {
	return r.WithContext(context.WithValue(r.Context(), requestIDKey{}, id))
}

// requestID returns the id withRequestID gave r, or a new one.
func requestID(r *http.Request) string {
	if id, ok := r.Context().Value(requestIDKey{}).(string); ok {
		return id
	}
	return NewRequestID()
}
