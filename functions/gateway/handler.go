package gateway

import (
	"bytes"
	"context"
	_ "embed"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/scrapeplatform/platform/shared/auth"
	"github.com/scrapeplatform/platform/shared/broker"
	"github.com/scrapeplatform/platform/shared/contract"
	"github.com/scrapeplatform/platform/shared/netguard"
	"github.com/scrapeplatform/platform/shared/sysstat"
)

// Broker is what the handler needs from the message broker.
type Broker interface {
	// Call publishes req and waits for its reply; its errors carry their class and code (see
	// broker.RPCClient.Call).
	Call(ctx context.Context, req *contract.Request) (*contract.Reply, error)
	Connected() bool
	// Blocked reports a broker resource alarm: connected, but refusing new messages.
	Blocked() bool
	Inspect(ctx context.Context, queue string) (broker.QueueState, error)
}

var _ Broker = (*broker.RPCClient)(nil)

// idleChecker is implemented by brokers that can verify an idle connection before use (see
// broker.RPCClient.CheckIdle); the handler uses it when Config.IdleCheck is set, as in Lambda.
type idleChecker interface {
	CheckIdle(ctx context.Context, maxIdle, timeout time.Duration)
}

var _ idleChecker = (*broker.RPCClient)(nil)

// problemReporter is what a Broker may also tell: why it is not connected (GET /health shows it).
type problemReporter interface {
	Problem() error
}

var _ problemReporter = (*broker.RPCClient)(nil)

// CapacityReader reads the workers' figures of the task queue for GET /status: the deliveries they hold
// (in flight) and the sum of their consumers' prefetch (their admission capacity).
type CapacityReader interface {
	Capacity(ctx context.Context, queue string) (inFlight, capacity int64, err error)
}

// SystemStats reports the system's memory and CPU usage for GET /status.
type SystemStats interface {
	MemoryPercent() (float64, error)
	CPUPercent() (float64, error)
}

var _ SystemStats = (*sysstat.Sampler)(nil)

// Handler serves the API.
type Handler struct {
	cfg    Config
	broker Broker
	authn  Authenticator
	log    *slog.Logger
	rec    Recorder
	topo   broker.Topology
	stats  SystemStats
	// capacity reads the workers' in-flight tasks and capacity (nil: GET /status leaves them out).
	capacity CapacityReader
	now      func() time.Time
	mux      *http.ServeMux
	// jobs is the job store (nil: none, every scrape is synchronous); callbacks enqueues the webhook of a
	// job this gateway cancels; resolver resolves callback hosts for the SSRF guard.
	jobs      JobStore
	callbacks Callbacks
	resolver  netguard.Resolver
}

// Options are a Handler's collaborators.
type Options struct {
	Broker        Broker
	Authenticator Authenticator
	Logger        *slog.Logger
	// Recorder receives metrics; nil records nothing.
	Recorder Recorder
	// Stats samples memory and CPU for GET /status; nil samples /proc.
	Stats SystemStats
	// Capacity, when set, adds the workers' in-flight tasks and capacity to GET /status.
	Capacity CapacityReader
	Now      func() time.Time
	// Jobs is the job store; nil runs every scrape synchronously and answers the job routes 503.
	Jobs JobStore
	// Callbacks enqueues the webhook of a job cancelled here (nil: none).
	Callbacks Callbacks
	// Resolver resolves callback_url hosts for the SSRF guard; nil uses the system's.
	Resolver netguard.Resolver
}

// New returns the API handler.
func New(cfg Config, o Options) *Handler {
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.Recorder == nil {
		o.Recorder = nopRecorder{}
	}
	if o.Stats == nil {
		o.Stats = &sysstat.Sampler{}
	}
	h := &Handler{cfg: cfg, broker: o.Broker, authn: o.Authenticator, log: o.Logger, rec: o.Recorder, stats: o.Stats, capacity: o.Capacity,
		topo: broker.NewTopology(cfg.TaskQueue), now: o.Now, mux: http.NewServeMux(), jobs: o.Jobs, callbacks: o.Callbacks,
		resolver: o.Resolver}
	h.mux.HandleFunc("POST /scrape", h.authenticated(h.scrape))
	h.mux.HandleFunc("GET /jobs/{id}", h.authenticated(h.getJob))
	h.mux.HandleFunc("DELETE /jobs/{id}", h.authenticated(h.deleteJob))
	h.mux.HandleFunc("GET /status", h.status)
	h.mux.HandleFunc("GET /health", h.health)
	h.mux.HandleFunc("GET /openapi.json", serveStatic("application/json", openAPIDocument))
	h.mux.HandleFunc("GET /docs", serveStatic("text/html; charset=utf-8", docsPage))
	h.mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		writeError(w, http.StatusNotFound, contract.CodeNotFound, fmt.Sprintf("no route %s %s; the API has POST /scrape, GET and DELETE /jobs/{id}, GET /health and GET /status (documented at GET /docs)", r.Method, r.URL.Path), requestID(r))
	})
	return h
}

// ServeHTTP implements http.Handler.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	start := h.now()
	// Every answer, errors before any route included, carries the request's id (see requestid.go).
	r = withRequestID(r, NewRequestID())
	rec := &statusRecorder{ResponseWriter: w, status: http.StatusOK}
	defer func() {
		if p := recover(); p != nil {
			h.log.Error("panic in handler", "panic", p, "path", r.URL.Path)
			if !rec.wrote {
				writeError(rec, http.StatusInternalServerError, contract.CodeInternal, "internal error", requestID(r))
			}
		}
		route := r.Pattern
		if route == "" {
			route = "unmatched"
		}
		h.rec.ObserveHTTP(route, rec.status, h.now().Sub(start))
	}()
	// Method mismatches on known paths answer 405 with a JSON body instead of the mux's plain text.
	if allowed := allowedMethod(r.URL.Path); allowed != "" && r.Method != allowed {
		w.Header().Set("Allow", allowed)
		writeError(rec, http.StatusMethodNotAllowed, contract.CodeMethodNotAllowed, fmt.Sprintf("%s needs %s, not %s", r.URL.Path, allowed, r.Method), requestID(r))
		return
	}
	if jobPathMethods(r) {
		w.Header().Set("Allow", "GET, DELETE")
		writeError(rec, http.StatusMethodNotAllowed, contract.CodeMethodNotAllowed, fmt.Sprintf("/jobs/{id} takes GET or DELETE, not %s", r.Method), requestID(r))
		return
	}
	h.mux.ServeHTTP(rec, r)
}

func allowedMethod(path string) string {
	switch path {
	case "/scrape":
		return http.MethodPost
	case "/health", "/status", "/openapi.json", "/docs":
		return http.MethodGet
	}
	return ""
}

// jobPathMethods reports a method other than GET and DELETE on /jobs/{id} (answered 405).
func jobPathMethods(r *http.Request) bool {
	rest, ok := strings.CutPrefix(r.URL.Path, "/jobs/")
	return ok && rest != "" && !strings.Contains(rest, "/") && r.Method != http.MethodGet && r.Method != http.MethodDelete
}

type statusRecorder struct {
	http.ResponseWriter
	status int
	wrote  bool
}

func (s *statusRecorder) WriteHeader(code int) {
	if !s.wrote {
		s.status, s.wrote = code, true
	}
	s.ResponseWriter.WriteHeader(code)
}

func (s *statusRecorder) Write(b []byte) (int, error) {
	s.wrote = true
	return s.ResponseWriter.Write(b)
}

func (h *Handler) authenticated(next func(http.ResponseWriter, *http.Request, Principal)) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		p, err := h.authn.Authenticate(r)
		if errors.Is(err, auth.ErrKeysUnavailable) {
			// Not the caller's fault: the token may be fine, the keys to check it are out of reach.
			h.log.Error("cannot verify tokens: identity provider keys unavailable", "request_id", requestID(r), "path", r.URL.Path, "error", err)
			w.Header().Set("Retry-After", retryAfterUnavailable)
			writeError(w, http.StatusServiceUnavailable, contract.CodeAuthUnavailable,
				"cannot check credentials right now: the identity provider's signing keys are unavailable; retry later", requestID(r))
			return
		}
		if errors.Is(err, ErrInsufficientScope) {
			h.log.Info("authorization failed", "request_id", requestID(r), "path", r.URL.Path, "reason", err.Error())
			writeError(w, http.StatusForbidden, contract.CodeForbidden, "forbidden: "+err.Error(), requestID(r))
			return
		}
		if err != nil {
			h.log.Info("authentication failed", "request_id", requestID(r), "path", r.URL.Path, "reason", err.Error())
			writeError(w, http.StatusUnauthorized, contract.CodeUnauthorized, authMessage(err), requestID(r))
			return
		}
		next(w, r, p)
	}
}

// scrapeBody is the body of POST /scrape.
type scrapeBody struct {
	ScriptName  *string          `json:"script_name"`
	Parameters  json.RawMessage  `json:"parameters"`
	Timeout     *json.RawMessage `json:"timeout"`
	CallbackURL *string          `json:"callback_url"`
}

// ScrapeResponse is the 200 answer of POST /scrape.
type ScrapeResponse struct {
	RequestID     string          `json:"request_id"`
	Status        contract.Status `json:"status"`
	Data          json.RawMessage `json:"data"`
	Error         *string         `json:"error"`
	ErrorCode     *contract.Code  `json:"error_code"`
	ErrorType     string          `json:"error_type,omitempty"`
	ErrorDetail   string          `json:"error_detail,omitempty"`
	ExecutionTime float64         `json:"execution_time"`
	TotalTime     float64         `json:"total_time"`
	WorkerID      string          `json:"worker_id"`
	ScriptName    string          `json:"script_name"`
	ScriptVersion string          `json:"script_version,omitempty"`
	// DataURL is a presigned GET of a result too large to inline (GATEWAY_INLINE_RESULT_MB); data is then
	// null. ResultSize is the size of a claim-checked result in bytes.
	DataURL    string `json:"data_url,omitempty"`
	ResultSize int64  `json:"result_size,omitempty"`
}

// scrapeInput is a validated POST /scrape.
type scrapeInput struct {
	req         contract.Request
	callbackURL string
}

// requestError is a 4xx found while reading the request.
type requestError struct {
	status int
	code   contract.Code
	msg    string
}

func (h *Handler) scrape(w http.ResponseWriter, r *http.Request, p Principal) {
	start := h.now()
	id := requestID(r)
	log := h.log.With("request_id", id, "subject", p.Subject)

	prefs, err := parsePrefer(r.Header.Values("Prefer"))
	if err != nil {
		log.Info("bad Prefer header", "error", err)
		writeError(w, http.StatusBadRequest, contract.CodeInvalidRequest, err.Error(), id)
		return
	}
	key, err := idempotencyKey(r.Header.Values("Idempotency-Key"))
	if err != nil {
		log.Info("bad Idempotency-Key header", "error", err)
		writeError(w, http.StatusBadRequest, contract.CodeInvalidRequest, err.Error(), id)
		return
	}
	in, rerr := h.readScrape(w, r)
	if rerr != nil {
		log.Info("bad scrape request", "status", rerr.status, "error", rerr.msg)
		writeError(w, rerr.status, rerr.code, rerr.msg, id)
		return
	}
	if in.callbackURL != "" {
		if err := h.cfg.Egress.CheckURL(r.Context(), h.resolver, in.callbackURL); err != nil {
			log.Info("callback_url refused", "error", err)
			writeError(w, http.StatusUnprocessableEntity, contract.CodeInvalidRequest, err.Error(), id)
			return
		}
	}
	in.req.RequestID = id
	in.req.Subject = p.Subject
	in.req.Accepted = start
	log = log.With("script", in.req.ScriptName)

	syncWait := h.cfg.SyncWait
	switch {
	case prefs.hasWait:
		syncWait = min(prefs.wait, syncWait)
	case prefs.respondAsync:
		syncWait = 0
	}
	needsJob := prefs.respondAsync || key != "" || in.callbackURL != ""
	if h.jobs == nil {
		if needsJob {
			h.storeFailed(w, log, id, errNoJobStore)
			return
		}
		if prefs.hasWait {
			w.Header().Set("Preference-Applied", prefs.applied(syncWait))
		}
		h.scrapeSync(w, r, log, in.req, syncWait)
		return
	}
	h.scrapeJob(w, r, log, p, in, prefs, key, syncWait)
}

// scrapeSync runs a scrape without a job: the caller waits for the reply up to the request's deadline,
// which the sync window bounds, and gets 504 past it (there is no job to come back to).
func (h *Handler) scrapeSync(w http.ResponseWriter, r *http.Request, log *slog.Logger, req contract.Request, syncWait time.Duration) {
	start := req.Accepted
	id := req.RequestID
	// In Lambda the invocation's own deadline may come first; the budget answers before it.
	hardStop, _ := r.Context().Deadline()
	req.Budget = contract.NewBudget(start, req.Timeout.Duration(), h.cfg.ReplyGrace, hardStop)
	if window := start.Add(max(syncWait, time.Second)); req.Deadline.After(window) {
		req.Deadline = window
	}

	ctx, cancel := context.WithDeadline(r.Context(), req.WaitUntil())
	defer cancel()
	if c, ok := h.broker.(idleChecker); ok && h.cfg.IdleCheck > 0 {
		c.CheckIdle(ctx, h.cfg.IdleCheck, time.Second)
	}
	reply, err := h.broker.Call(ctx, &req)
	if err != nil {
		h.callFailed(w, r, log, id, req, err)
		return
	}
	if reply.ResultKey != "" {
		// Only a job's reply may be claim-checked; this task had none.
		h.callFailed(w, r, log, id, req, fmt.Errorf("%w: a claim-checked result for a task without a job", broker.ErrMalformedReply))
		return
	}
	h.answerReply(w, r, log, req, reply)
}

// Retry-After of the answers that ask the caller to come back: a full queue drains within seconds; a broker
// that is down or blocked is back within a few.
const (
	retryAfterQueueFull   = "2"
	retryAfterUnavailable = "5"
)

// callFailed answers a failed call. The error's classification (contract.CodeOf, else its class) picks
// the code, and httpStatus the status; nothing else looks at the error.
func (h *Handler) callFailed(w http.ResponseWriter, r *http.Request, log *slog.Logger, id string, req contract.Request, err error) {
	if r.Context().Err() != nil {
		log.Info("client went away before the reply", "error", err)
		writeError(w, 499, contract.CodeInternal, "client closed the request", id)
		return
	}
	code := callErrorCode(err)
	status := httpStatus(code)
	switch code {
	case contract.CodeQueueFull:
		// The broker refused the task: the queue is over its bound (max-length policy, reject-publish).
		log.Warn("task queue full", "error", err)
		h.rec.ObserveScrape("queue_full", 0)
		w.Header().Set("Retry-After", retryAfterQueueFull)
		writeError(w, status, code, "the task queue is full: workers are behind; retry in a few seconds", id)
	case contract.CodeBrokerUnavailable:
		log.Error("broker unavailable", "error", err)
		h.rec.ObserveScrape("broker_unavailable", 0)
		w.Header().Set("Retry-After", retryAfterUnavailable)
		writeError(w, status, code, "the task could not be handed to the message broker: "+err.Error(), id)
	case contract.CodeNoWorkerResponse:
		wait := req.WaitUntil().Sub(req.Accepted)
		log.Warn("no worker answered in time", "waited_ms", wait.Milliseconds())
		h.rec.ObserveScrape("no_worker_response", 0)
		writeError(w, status, code,
			fmt.Sprintf("no worker answered within %.1fs (timeout %gs plus %.1fs grace): workers may be busy, scaling up, or down; GET /status shows the queue", wait.Seconds(), float64(req.Timeout), h.cfg.ReplyGrace.Seconds()), id)
	case contract.CodeDeadlineExceeded:
		log.Warn("no time left to hand the task on", "error", err)
		h.rec.ObserveScrape("no_worker_response", 0)
		writeError(w, status, code, "the request's deadline passed before the task could be handed to a worker", id)
	default:
		if errors.Is(err, broker.ErrMalformedReply) {
			// An internal error, but the worker's: the gateway itself is fine.
			status = http.StatusBadGateway
		}
		log.Error("rpc failed", "error", err)
		writeError(w, status, code, "internal error: "+err.Error(), id)
	}
}

// readScrape reads and validates the body of POST /scrape.
func (h *Handler) readScrape(w http.ResponseWriter, r *http.Request) (scrapeInput, *requestError) {
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, h.cfg.MaxBodyBytes))
	if err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			return scrapeInput{}, &requestError{http.StatusRequestEntityTooLarge, contract.CodePayloadTooLarge,
				fmt.Sprintf("request body is larger than %d bytes", h.cfg.MaxBodyBytes)}
		}
		if errors.Is(err, os.ErrDeadlineExceeded) {
			// The server's body read timeout (gateway-local's GATEWAY_BODY_TIMEOUT) passed mid-body.
			return scrapeInput{}, &requestError{http.StatusRequestTimeout, contract.CodeRequestTimeout,
				"the request body did not arrive within the server's read timeout; send the whole body at once"}
		}
		return scrapeInput{}, &requestError{http.StatusBadRequest, contract.CodeInvalidRequest, "could not read the request body: " + err.Error()}
	}
	b, derr := decodeScrapeBody(body)
	if derr != nil {
		return scrapeInput{}, &requestError{http.StatusBadRequest, contract.CodeInvalidRequest, derr.Error()}
	}
	in, verr := h.validateScrape(b)
	if verr != nil {
		return scrapeInput{}, &requestError{http.StatusUnprocessableEntity, contract.CodeInvalidRequest, verr.Error()}
	}
	return in, nil
}

// decodeScrapeBody parses the JSON body strictly: one object, no unknown fields, no trailing data.
func decodeScrapeBody(body []byte) (scrapeBody, error) {
	var b scrapeBody
	if len(bytes.TrimSpace(body)) == 0 {
		return b, errors.New(`request body is empty; send JSON such as {"script_name": "example_scraper", "parameters": {"url": "https://example.com"}}`)
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&b); err != nil {
		var se *json.SyntaxError
		var te *json.UnmarshalTypeError
		switch {
		case errors.As(err, &se):
			return b, fmt.Errorf("request body is not valid JSON (at byte %d): %v", se.Offset, err)
		case errors.As(err, &te) && te.Field != "":
			return b, fmt.Errorf("field %q must be %s, not a JSON %s", te.Field, jsonKind(te.Field), te.Value)
		case errors.As(err, &te):
			return b, fmt.Errorf("request body must be a JSON object, not a JSON %s", te.Value)
		case strings.HasPrefix(err.Error(), "json: unknown field "):
			return b, fmt.Errorf("unknown field %s; the fields are script_name, parameters, timeout and callback_url", strings.TrimPrefix(err.Error(), "json: unknown field "))
		case errors.Is(err, io.ErrUnexpectedEOF):
			return b, errors.New("request body is not valid JSON: it ends too early")
		}
		return b, fmt.Errorf("request body is not valid JSON: %v", err)
	}
	if _, err := dec.Token(); err != io.EOF {
		return b, errors.New("request body must hold exactly one JSON object; found more data after it")
	}
	// encoding/json lets the last of two equal keys win and matches field names case-insensitively (with
	// Unicode folding: "SCRIPT_NAME", "ſcript_name"); both make one body mean different things to different
	// readers, so both are refused.
	if err := contract.CheckDuplicateKeys(body, "the request body"); err != nil {
		return b, err
	}
	var fields map[string]json.RawMessage
	if err := json.Unmarshal(body, &fields); err != nil {
		return b, fmt.Errorf("request body is not valid JSON: %v", err)
	}
	for name := range fields {
		if !slices.Contains(scrapeFields, name) {
			return b, fmt.Errorf("unknown field %q; field names are case-sensitive: the fields are script_name, parameters, timeout and callback_url", name)
		}
	}
	return b, nil
}

// scrapeFields are the fields of a POST /scrape body, spelled exactly.
var scrapeFields = []string{"script_name", "parameters", "timeout", "callback_url"}

func jsonKind(field string) string {
	switch field {
	case "script_name":
		return "a string"
	case "parameters":
		return "an object"
	case "timeout":
		return "a number of seconds"
	case "callback_url":
		return "a string (an http or https URL)"
	}
	return "another type"
}

func (h *Handler) validateScrape(b scrapeBody) (scrapeInput, error) {
	var errs []error
	req := contract.Request{Version: contract.Version, Parameters: b.Parameters, Budget: contract.Budget{Timeout: contract.SecondsOf(h.cfg.DefaultTimeout.Round(contract.TimeoutResolution))},
		TimeoutDefaulted: b.Timeout == nil || string(*b.Timeout) == "null"}
	if b.ScriptName == nil {
		errs = append(errs, errors.New("script_name is required"))
	} else {
		req.ScriptName = *b.ScriptName
		if err := contract.ValidateScriptName(req.ScriptName); err != nil {
			errs = append(errs, err)
		}
	}
	if err := contract.ValidateParameters(b.Parameters); err != nil {
		errs = append(errs, err)
	}
	if len(bytes.TrimSpace(b.Parameters)) == 0 || string(bytes.TrimSpace(b.Parameters)) == "null" {
		req.Parameters = json.RawMessage("{}")
	}
	if b.Timeout != nil && string(*b.Timeout) != "null" {
		var t float64
		if err := json.Unmarshal(*b.Timeout, &t); err != nil {
			errs = append(errs, fmt.Errorf("timeout must be a number of seconds, got %s", *b.Timeout))
		} else if err := contract.ValidateTimeout(contract.Seconds(t), h.cfg.MaxTimeout); err != nil {
			errs = append(errs, err)
		} else {
			req.Timeout = contract.Seconds(t)
		}
	}
	in := scrapeInput{req: req}
	if b.CallbackURL != nil {
		switch u := *b.CallbackURL; {
		case u == "":
			errs = append(errs, errors.New("callback_url is empty; leave it out for no callback"))
		case len(u) > netguard.MaxURLLength:
			errs = append(errs, fmt.Errorf("callback_url is longer than %d characters", netguard.MaxURLLength))
		default:
			in.callbackURL = u
		}
	}
	return in, errors.Join(errs...)
}

// HealthResponse is the answer of GET /health.
type HealthResponse struct {
	Status     string            `json:"status"`
	Components map[string]string `json:"components"`
	// Reasons says, for a component that is not connected, why (broker.Explain: words, no addresses or
	// credentials).
	Reasons   map[string]string `json:"reasons,omitempty"`
	Timestamp time.Time         `json:"timestamp"`
}

func (h *Handler) health(w http.ResponseWriter, r *http.Request) {
	resp := HealthResponse{Status: "healthy", Components: map[string]string{"rabbitmq": "connected"}, Timestamp: h.now().UTC()}
	code := http.StatusOK
	switch {
	case !h.broker.Connected():
		resp.Status, resp.Components["rabbitmq"], code = "unhealthy", "disconnected", http.StatusServiceUnavailable
		if pr, ok := h.broker.(problemReporter); ok {
			if err := pr.Problem(); err != nil {
				resp.Reasons = map[string]string{"rabbitmq": broker.Explain(err)}
			}
		}
	case h.broker.Blocked():
		// A memory or disk alarm: scrapes are answered 503 until it clears.
		resp.Status, resp.Components["rabbitmq"], code = "unhealthy", "blocked", http.StatusServiceUnavailable
	}
	writeJSON(w, code, resp)
}

// StatusResponse is the answer of GET /status. Without a token (STATUS_PUBLIC) only the aggregate figures
// are filled in: status, queue_length, active_workers, memory_usage, cpu_usage and timestamp.
type StatusResponse struct {
	// Status is "healthy" while the broker is connected and accepts messages, else "unhealthy".
	Status        string `json:"status"`
	QueueLength   int    `json:"queue_length"`
	ActiveWorkers int    `json:"active_workers"`
	// InFlight is how many tasks the workers hold now (running or about to), and Capacity how many they
	// take at once now (the sum of their admission capacities: their consumers' prefetch). Present when
	// the gateway can read the broker's management API (RABBITMQ_MANAGEMENT_URL).
	InFlight              *int64    `json:"in_flight,omitempty"`
	Capacity              *int64    `json:"capacity,omitempty"`
	DeadLetterQueueLength *int      `json:"dead_letter_queue_length,omitempty"`
	MemoryUsage           float64   `json:"memory_usage"`
	CPUUsage              float64   `json:"cpu_usage"`
	TaskQueue             string    `json:"task_queue,omitempty"`
	RabbitMQ              string    `json:"rabbitmq,omitempty"`
	Timestamp             time.Time `json:"timestamp"`
}

// status serves GET /status: the aggregate to anyone when STATUS_PUBLIC allows, the details to an
// authenticated caller. A request without credentials is anonymous; one with bad credentials is refused.
func (h *Handler) status(w http.ResponseWriter, r *http.Request) {
	_, err := h.authn.Authenticate(r)
	anonymous := errors.Is(err, auth.ErrNoCredentials)
	if err != nil && !(anonymous && h.cfg.StatusPublic) {
		h.authenticated(func(http.ResponseWriter, *http.Request, Principal) {})(w, r)
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), 5*time.Second)
	defer cancel()
	tasks, err := h.broker.Inspect(ctx, h.topo.TaskQueue)
	if err != nil {
		h.log.Error("status: inspect task queue", "error", err)
		writeError(w, http.StatusServiceUnavailable, contract.CodeBrokerUnavailable, "could not read the queue from the broker: "+err.Error(), requestID(r))
		return
	}
	resp := StatusResponse{Status: "healthy", QueueLength: tasks.Messages, ActiveWorkers: tasks.Consumers, Timestamp: h.now().UTC()}
	if h.capacity != nil {
		if inFlight, capacity, err := h.capacity.Capacity(ctx, h.topo.TaskQueue); err == nil {
			resp.InFlight, resp.Capacity = &inFlight, &capacity
		} else {
			h.log.Warn("status: read the workers' capacity", "error", err)
		}
	}
	if !h.broker.Connected() || h.broker.Blocked() {
		resp.Status = "unhealthy"
	}
	if !anonymous {
		resp.TaskQueue, resp.RabbitMQ = h.topo.TaskQueue, "connected"
		dead := 0
		if d, err := h.broker.Inspect(ctx, h.topo.DeadLetterQueue); err == nil {
			dead = d.Messages
		}
		resp.DeadLetterQueueLength = &dead
	}
	if m, err := h.stats.MemoryPercent(); err == nil {
		resp.MemoryUsage = m
	}
	if c, err := h.stats.CPUPercent(); err == nil {
		resp.CPUUsage = c
	}
	writeJSON(w, http.StatusOK, resp)
}

// The API's OpenAPI document and a browsable page that renders it (no external scripts: it works offline).
var (
	//go:embed openapi.json
	openAPIDocument []byte
	//go:embed docs.html
	docsPage []byte
)

func serveStatic(contentType string, body []byte) http.HandlerFunc {
	return func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", contentType)
		w.Header().Set("Cache-Control", "public, max-age=300")
		_, _ = w.Write(body)
	}
}
