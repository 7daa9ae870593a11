package runner

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"unicode/utf8"

	"github.com/scrapeplatform/platform/shared/contract"
)

// Caps on the text a result document may put into a contract.Error. runner.py caps these itself; the
// document is untrusted, so they are enforced again here.
const (
	maxTypeBytes      = 200
	maxMessageBytes   = 4 << 10
	maxTracebackBytes = 6 << 10
)

// outcome is what a result document says about a run.
type outcome struct {
	Status contract.Status
	Data   json.RawMessage // valid JSON, when Status is completed
	Err    *contract.Error // set unless Status is completed; CodeInternal means the runner itself failed
}

// resultDoc is the document runner.py writes to fd 3 (see the top of runner.py).
type resultDoc struct {
	OK        *bool           `json:"ok"`
	Data      json.RawMessage `json:"data"`
	Kind      string          `json:"kind"`
	Type      string          `json:"type"`
	Message   string          `json:"message"`
	Traceback string          `json:"traceback"`
	Size      int64           `json:"size"`
}

// parseResult interprets the result document from the child. The document is untrusted: the script runs in
// the same process as the runner and can write to the channel. The outcome is either completed, with Data
// that is valid JSON of at most maxData bytes, or failed with an Err whose texts are capped and valid UTF-8.
// An error means the document is malformed.
//
// A completed document exactly as runner.py writes it ({"ok":true,"data":<value>}) is not decoded: its Data
// is the value's bytes inside doc, checked with json.Valid, so a 100 MiB result is not copied.
func parseResult(doc []byte, maxData int) (outcome, error) {
	if data, ok := bytes.CutPrefix(doc, []byte(okPrefix)); ok && bytes.HasSuffix(data, []byte("}")) {
		if data = bytes.TrimSpace(data[:len(data)-1]); len(data) > 0 && json.Valid(data) {
			return completed(data, maxData), nil
		}
	}
	var d resultDoc
	if err := json.Unmarshal(doc, &d); err != nil {
		return outcome{}, fmt.Errorf("decode: %w", err)
	}
	if d.OK == nil {
		return outcome{}, errors.New(`no "ok" field`)
	}
	if *d.OK {
		if d.Data == nil {
			return outcome{}, errors.New(`no "data" field`)
		}
		return completed(d.Data, maxData), nil
	}

	typ := capText(d.Type, maxTypeBytes)
	msg := capText(d.Message, maxMessageBytes)
	switch d.Kind {
	case "exception":
		if typ == "" {
			typ = "Exception"
		}
		if msg == "" {
			msg = typ
		}
		if typ == "ModuleNotFoundError" {
			msg += " (a script sees only the standard library and the packages its own requirements.txt lists)"
		}
		return failed(contract.CodeScriptError, typ, msg, capText(d.Traceback, maxTracebackBytes)), nil
	case "invalid_output":
		if msg == "" {
			msg = "the result cannot be encoded as JSON"
		}
		return failed(contract.CodeInvalidOutput, typ, msg, ""), nil
	case "timeout":
		// An async script's coroutine cancelled by runner.py just before the worker's kill (runner.py, "Time
		// budget"). Run replaces the message with one naming the budget.
		return outcome{Status: contract.StatusTimeout, Err: &contract.Error{Code: contract.CodeScriptTimeout,
			Type: typ, Message: msg, Detail: capText(d.Traceback, maxTracebackBytes)}}, nil
	case "too_large":
		return failed(contract.CodeOutputTooLarge, "", tooLargeMessage(d.Size, maxData), ""), nil
	case "setup":
		if msg == "" {
			msg = "no reason given"
		}
		return failed(contract.CodeInternal, "", "the runner could not start the script: "+msg, ""), nil
	}
	return outcome{}, fmt.Errorf("unknown failure kind %q", capText(d.Kind, 40))
}

// okPrefix is how runner.py starts a completed result document.
const okPrefix = `{"ok":true,"data":`

// completed is the outcome of a completed document with the value data (valid JSON).
func completed(data json.RawMessage, maxData int) outcome {
	if len(data) > maxData {
		return failed(contract.CodeOutputTooLarge, "", tooLargeMessage(int64(len(data)), maxData), "")
	}
	if depth := contract.JSONDepth(data); depth > contract.MaxResultDepth {
		return failed(contract.CodeInvalidOutput, "", fmt.Sprintf("the result is nested %d deep; the limit is %d", depth, contract.MaxResultDepth), "")
	}
	return outcome{Status: contract.StatusCompleted, Data: data}
}

func failed(code contract.Code, typ, msg, detail string) outcome {
	return outcome{
		Status: contract.StatusFailed,
		Err:    &contract.Error{Code: code, Type: typ, Message: msg, Detail: detail},
	}
}

func tooLargeMessage(size int64, limit int) string {
	if size <= int64(limit) {
		return fmt.Sprintf("the result is larger than the limit of %d bytes", limit)
	}
	return fmt.Sprintf("the result is %d bytes as JSON; the limit is %d", size, limit)
}

// capText returns s as valid UTF-8 of at most n bytes, marking a cut with "…".
func capText(s string, n int) string {
	s = strings.ToValidUTF8(s, "\uFFFD")
	if len(s) <= n {
		return s
	}
	const mark = "…"
	cut := n - len(mark)
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return s[:cut] + mark
}
