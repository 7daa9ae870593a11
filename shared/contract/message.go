package contract

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"regexp"
	"strconv"
	"time"
	"unicode/utf8"
)

// Version is the schema version of the request and reply documents this package writes.
const Version = 1

// Limits on requests. They are part of the contract: the gateway and the worker both enforce them.
const (
	// MaxScriptNameLength is the longest script name accepted.
	MaxScriptNameLength = 64
	// MinTimeout and MaxTimeout bound a request's timeout. A deployment may narrow them (see the gateway's
	// SCRAPE_MAX_TIMEOUT) but never widen them.
	MinTimeout = 100 * time.Millisecond
	MaxTimeout = time.Hour
	// MaxParameterDepth bounds how deeply objects and arrays nest in a request's parameters (the
	// parameters object itself is depth 1).
	MaxParameterDepth = 64
	// MaxResultDepth bounds how deeply objects and arrays nest in a script's result (a top-level object
	// or array is depth 1): deeper results are refused as invalid_output, since clients' parsers give up on
	// them (Python's json raises RecursionError near 1,000).
	MaxResultDepth = 128
)

var scriptNamePattern = regexp.MustCompile(`^[a-z0-9][a-z0-9_-]*$`)

// Status is the outcome of a scrape that reached a worker.
type Status string

// The outcomes of a scrape.
const (
	StatusCompleted Status = "completed"
	StatusFailed    Status = "failed"
	StatusTimeout   Status = "timeout"
	// StatusCancelled: the job's owner cancelled it (DELETE /jobs/{id}) before it finished.
	StatusCancelled Status = "cancelled"
)

// Request asks a worker to run one script once.
type Request struct {
	// Version is the schema version; workers reject versions they do not know.
	Version int `json:"version"`
	// RequestID identifies the scrape end to end (HTTP response, logs, AMQP correlation id).
	RequestID string `json:"request_id"`
	// ScriptName names a script folder in the script repository.
	ScriptName string `json:"script_name"`
	// Parameters is the JSON object handed to scrape(params).
	Parameters json.RawMessage `json:"parameters"`
	// Budget is the request's time budget: its timeout (seconds), deadline and acceptance time, on the wire
	// as "timeout", "deadline" and "accepted_at". Every deadline on the request's path derives from it.
	Budget
	// TimeoutDefaulted says the caller named no timeout, so a script's manifest may choose a shorter one.
	TimeoutDefaulted bool `json:"timeout_defaulted,omitempty"`
	// Subject is the authenticated caller (JWT sub or IAM principal), for logs and audit.
	Subject string `json:"subject,omitempty"`
	// Job, when set, says the gateway recorded the request as a job in the job store (shared/job): the
	// job outlives the gateway's wait, so the worker records its start and end there, writes a result too
	// large for a message to the store (the claim check), and has the callback delivered.
	Job *JobTicket `json:"job,omitempty"`
}

// JobTicket is what a worker needs to keep a request's job: whose it is and where its callback goes. The
// job's created_at is the budget's Accepted.
type JobTicket struct {
	// Owner is the token's subject or client id; only the owner sees the job.
	Owner string `json:"owner"`
	// CallbackURL, when set, receives the final job (a signed webhook) once the job ends.
	CallbackURL string `json:"callback_url,omitempty"`
}

// Reply is a worker's answer to a Request.
type Reply struct {
	Version   int    `json:"version"`
	RequestID string `json:"request_id"`
	Status    Status `json:"status"`
	// Data is the script's return value (JSON), present when Status is completed and the value travels
	// inline.
	Data json.RawMessage `json:"data,omitempty"`
	// ResultKey names the job store object holding a completed job's value when it was too large to travel
	// in a message (the claim check, job.ResultKey); Data is then empty.
	ResultKey string `json:"result_key,omitempty"`
	// ResultSize is the value's size in bytes (inline or claim-checked).
	ResultSize int64 `json:"result_size,omitempty"`
	// Error explains a failed or timed-out scrape.
	Error *Error `json:"error,omitempty"`
	// ExecutionTime is the script's wall-clock run time in seconds, as measured by the worker.
	ExecutionTime float64 `json:"execution_time"`
	// WorkerID names the worker that ran the script.
	WorkerID string `json:"worker_id"`
	// ScriptVersion identifies the exact script content that ran (content hash, object version, commit).
	ScriptVersion string `json:"script_version,omitempty"`
	// StartedAt and FinishedAt are the worker's clock around the script run.
	StartedAt  time.Time `json:"started_at"`
	FinishedAt time.Time `json:"finished_at"`
}

// Error is a failure a user can act on: a stable code, a sentence, and optional detail such as the
// exception type or the tail of the script's output.
type Error struct {
	Code    Code   `json:"code"`
	Message string `json:"message"`
	// Type is the exception class when the script raised one (e.g. "ValueError").
	Type string `json:"type,omitempty"`
	// Detail carries extra diagnostic text (traceback, output tail), already capped by the worker.
	Detail string `json:"detail,omitempty"`
}

func (e *Error) Error() string { return fmt.Sprintf("%s: %s", e.Code, e.Message) }

// Seconds is a duration that travels as a JSON number of seconds (fractions allowed).
type Seconds float64

// Duration converts s to a time.Duration, rounded to the nearest nanosecond (2.3 s is 2.3 s, not the
// 2.299999999 s that truncating the double would give).
func (s Seconds) Duration() time.Duration {
	return time.Duration(math.Round(float64(s) * float64(time.Second)))
}

// SecondsOf converts d to Seconds.
func SecondsOf(d time.Duration) Seconds { return Seconds(d.Seconds()) }

// ValidateScriptName reports whether name is a valid script name: lower-case letters, digits, '_' and '-',
// starting with a letter or digit, at most MaxScriptNameLength bytes. This rules out path traversal,
// absolute paths and hidden files before any lookup.
func ValidateScriptName(name string) error {
	switch {
	case name == "":
		return errors.New("script_name is required")
	case len(name) > MaxScriptNameLength:
		return fmt.Errorf("script_name is %d characters long; the limit is %d", len(name), MaxScriptNameLength)
	case !scriptNamePattern.MatchString(name):
		return fmt.Errorf("script_name %q is not valid: use lower-case letters, digits, '_' and '-', starting with a letter or digit", truncate(name, 80))
	}
	return nil
}

// ValidateTimeout reports whether t lies within [MinTimeout, max] and names a whole number of
// milliseconds (TimeoutResolution): a finer timeout would be read differently by each side (Go's
// time.Duration truncates to nanoseconds, Python keeps the double), and 25.0000000001 would pass a 25 s
// limit on one side and fail it on the other.
func ValidateTimeout(t Seconds, max time.Duration) error {
	f := float64(t)
	if f != f || f < MinTimeout.Seconds() || f > max.Seconds() { // f != f catches NaN
		return fmt.Errorf("timeout must be between %g and %g seconds, got %g", MinTimeout.Seconds(), max.Seconds(), f)
	}
	// The tolerance (a picosecond) only absorbs the double's own rounding of a decimal such as 1.001.
	if ms := f * 1000; math.Abs(ms-math.Round(ms)) > 1e-9 {
		return fmt.Errorf("timeout must be a whole number of milliseconds (at most 3 decimal places), got %s",
			strconv.FormatFloat(f, 'f', -1, 64))
	}
	return nil
}

// TimeoutResolution is the finest resolution of a request's timeout (see ValidateTimeout).
const TimeoutResolution = time.Millisecond

// ValidateParameters reports whether raw is absent, null or a JSON object in valid UTF-8, nested at most
// MaxParameterDepth deep (scripts decode it with Python's json, which gives up on deep nesting and on
// invalid UTF-8), with no object naming a key twice (*DuplicateKeyError) and no number that another side
// would read differently: an integer beyond ±MaxSafeInteger or a number beyond a double's range
// (*NumberError).
func ValidateParameters(raw json.RawMessage) error {
	trimmed := bytes.TrimSpace(raw)
	if len(trimmed) == 0 || bytes.Equal(trimmed, []byte("null")) {
		return nil
	}
	if trimmed[0] != '{' || !json.Valid(trimmed) {
		return errors.New("parameters must be a JSON object")
	}
	if !utf8.Valid(trimmed) {
		return errors.New("parameters must be valid UTF-8")
	}
	if d := jsonDepth(trimmed); d > MaxParameterDepth {
		return fmt.Errorf("parameters are nested %d deep; the limit is %d", d, MaxParameterDepth)
	}
	return scanJSON(trimmed, "parameters", true, true)
}

// JSONDepth returns the deepest nesting of objects and arrays in doc, which must be valid JSON (a scalar
// is depth 0, [] depth 1). It scans bytes, without recursion.
func JSONDepth(doc []byte) int { return jsonDepth(doc) }

// jsonDepth returns the deepest nesting of objects and arrays in doc, which must be valid JSON.
func jsonDepth(doc []byte) int {
	depth, deepest := 0, 0
	inString, escaped := false, false
	for _, c := range doc {
		switch {
		case escaped:
			escaped = false
		case inString:
			switch c {
			case '\\':
				escaped = true
			case '"':
				inString = false
			}
		case c == '"':
			inString = true
		case c == '{' || c == '[':
			depth++
			deepest = max(deepest, depth)
		case c == '}' || c == ']':
			depth--
		}
	}
	return deepest
}

// Validate checks every field of r and reports every problem at once.
func (r *Request) Validate() error {
	var errs []error
	if r.Version != Version {
		errs = append(errs, fmt.Errorf("unsupported request version %d (this build speaks %d)", r.Version, Version))
	}
	if r.RequestID == "" || len(r.RequestID) > 128 {
		errs = append(errs, errors.New("request_id is required and at most 128 characters"))
	}
	if err := ValidateScriptName(r.ScriptName); err != nil {
		errs = append(errs, err)
	}
	if err := ValidateParameters(r.Parameters); err != nil {
		errs = append(errs, err)
	}
	if err := ValidateTimeout(r.Timeout, MaxTimeout); err != nil {
		errs = append(errs, err)
	}
	if r.Deadline.IsZero() {
		errs = append(errs, errors.New("deadline is required"))
	}
	if j := r.Job; j != nil {
		if j.Owner == "" || len(j.Owner) > 512 {
			errs = append(errs, errors.New("job.owner is required and at most 512 characters"))
		}
		if len(j.CallbackURL) > MaxCallbackURLLength {
			errs = append(errs, fmt.Errorf("job.callback_url is longer than %d characters", MaxCallbackURLLength))
		}
		if r.Accepted.IsZero() {
			errs = append(errs, errors.New("a job needs accepted_at (its created_at)"))
		}
	}
	return errors.Join(errs...)
}

// MaxCallbackURLLength bounds a callback_url.
const MaxCallbackURLLength = 2048

// Validate checks that rep is a well-formed reply.
func (rep *Reply) Validate() error {
	var errs []error
	if rep.Version != Version {
		errs = append(errs, fmt.Errorf("unsupported reply version %d", rep.Version))
	}
	if rep.RequestID == "" {
		errs = append(errs, errors.New("request_id is required"))
	}
	if len(rep.Data) > 0 && rep.ResultKey != "" {
		errs = append(errs, errors.New("a reply holds either inline data or a result_key, not both"))
	}
	switch rep.Status {
	case StatusCompleted:
	case StatusFailed, StatusTimeout, StatusCancelled:
		if rep.Error == nil || rep.Error.Code == "" {
			errs = append(errs, fmt.Errorf("a %s reply needs an error with a code", rep.Status))
		}
	default:
		errs = append(errs, fmt.Errorf("unknown reply status %q", rep.Status))
	}
	return errors.Join(errs...)
}

// Failed builds a failed (or, for CodeScriptTimeout, timeout) reply to req.
func Failed(req *Request, code Code, message string) *Reply {
	status := StatusFailed
	switch code {
	case CodeScriptTimeout:
		status = StatusTimeout
	case CodeCancelled:
		status = StatusCancelled
	}
	return &Reply{
		Version:   Version,
		RequestID: req.RequestID,
		Status:    status,
		Error:     &Error{Code: code, Message: message},
	}
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}
