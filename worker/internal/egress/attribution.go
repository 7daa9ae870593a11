package egress

import (
	"context"
	"encoding/base64"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"
)

// A run names itself to the proxy so that the worker can tell the caller why the run's requests were
// refused, whatever the script did with the proxy's answer (a script may catch the error and raise its own,
// or print it). The runner puts the name in the proxy URL's user information (RunProxyURL); HTTP libraries
// send it as Proxy-Authorization: Basic on every request and CONNECT; the proxy remembers the last refusal
// per name; the worker asks for it (Refusal) when it builds the reply of a failed run. The name is not a
// secret and grants nothing: a script that sends another run's name can at worst attach a sentence to that
// run's failure.
//
// The user is the script's name, the password the request's id, or "warm" for a warm runner (one process
// serves many requests of one script, and its environment is set once): a warm run's refusal is found by the
// script's name and the run's start time.

// warmRun is the password of a warm runner's requests.
const warmRun = "warm"

// RunProxyURL returns proxyURL with the run's name in its user information. requestID is empty for a warm
// runner. A proxyURL that does not parse is returned as it is.
func RunProxyURL(proxyURL, script, requestID string) string {
	u, err := url.Parse(proxyURL)
	if err != nil || script == "" {
		return proxyURL
	}
	if requestID == "" {
		requestID = warmRun
	}
	u.User = url.UserPassword(script, requestID)
	return u.String()
}

// runLogSize bounds the refusals remembered; the oldest go first.
const runLogSize = 1024

// runLog remembers the last refusal of each run that named itself.
type runLog struct {
	mu    sync.Mutex
	last  map[string]refusalNote
	order []string // keys, oldest first
}

type refusalNote struct {
	sentence string
	at       time.Time
}

// record remembers sentence as the last refusal of the run whose request's context is ctx.
func (l *runLog) record(ctx context.Context, sentence string) {
	key, ok := ctx.Value(runNameKey{}).(string)
	if !ok {
		return
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.last == nil {
		l.last = map[string]refusalNote{}
	}
	if _, seen := l.last[key]; !seen {
		if len(l.order) >= runLogSize {
			delete(l.last, l.order[0])
			l.order = l.order[1:]
		}
		l.order = append(l.order, key)
	}
	l.last[key] = refusalNote{sentence: sentence, at: time.Now()}
}

// Refusal returns the sentence of the last refusal (or unreachable destination) of the run of script for
// requestID, or of script's warm runner, that happened at or after since. The worker puts it in the reply of
// a failed run.
func (p *Proxy) Refusal(script, requestID string, since time.Time) (string, bool) {
	p.runs.mu.Lock()
	defer p.runs.mu.Unlock()
	var best refusalNote
	for _, run := range []string{requestID, warmRun} {
		n, ok := p.runs.last[script+"\x00"+run]
		if ok && !n.at.Before(since) && n.at.After(best.at) {
			best = n
		}
	}
	return best.sentence, best.sentence != ""
}

// runNameKey is the context key of the run's name (script + "\x00" + request id), which withRunName reads.
type runNameKey struct{}

// withRunName returns r with the run's name from its Proxy-Authorization header in its context, or r itself
// when it names no run.
func withRunName(r *http.Request) *http.Request {
	enc, ok := strings.CutPrefix(r.Header.Get("Proxy-Authorization"), "Basic ")
	if !ok {
		return r
	}
	dec, err := base64.StdEncoding.DecodeString(strings.TrimSpace(enc))
	if err != nil {
		return r
	}
	script, run, ok := strings.Cut(string(dec), ":")
	if !ok || script == "" {
		return r
	}
	return r.WithContext(context.WithValue(r.Context(), runNameKey{}, script+"\x00"+run))
}
