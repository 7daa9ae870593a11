package runner

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/scrapeplatform/platform/shared/contract"
)

func TestParseResult(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		doc     string
		status  contract.Status
		data    string
		code    contract.Code
		typ     string
		message string
		wantErr bool
	}{
		{name: "object", doc: `{"ok":true,"data":{"a":[1,2]}}`, status: contract.StatusCompleted, data: `{"a":[1,2]}`},
		{name: "null data", doc: `{"ok":true,"data":null}`, status: contract.StatusCompleted, data: `null`},
		{name: "string data", doc: ` {"ok": true, "data": "ü"} `, status: contract.StatusCompleted, data: `"ü"`},
		{name: "data at the limit", doc: `{"ok":true,"data":"` + strings.Repeat("x", 98) + `"}`,
			status: contract.StatusCompleted, data: `"` + strings.Repeat("x", 98) + `"`},
		{name: "data over the limit", doc: `{"ok":true,"data":"` + strings.Repeat("x", 99) + `"}`,
			status: contract.StatusFailed, code: contract.CodeOutputTooLarge, message: "101 bytes"},
		{name: "exception", doc: `{"ok":false,"kind":"exception","type":"ValueError","message":"boom","traceback":"tb"}`,
			status: contract.StatusFailed, code: contract.CodeScriptError, typ: "ValueError", message: "boom"},
		{name: "exception without message", doc: `{"ok":false,"kind":"exception","type":"KeyError"}`,
			status: contract.StatusFailed, code: contract.CodeScriptError, typ: "KeyError", message: "KeyError"},
		{name: "exception without anything", doc: `{"ok":false,"kind":"exception"}`,
			status: contract.StatusFailed, code: contract.CodeScriptError, typ: "Exception", message: "Exception"},
		{name: "invalid output", doc: `{"ok":false,"kind":"invalid_output","type":"set","message":"a set"}`,
			status: contract.StatusFailed, code: contract.CodeInvalidOutput, typ: "set", message: "a set"},
		{name: "too large", doc: `{"ok":false,"kind":"too_large","size":5000,"limit":100}`,
			status: contract.StatusFailed, code: contract.CodeOutputTooLarge, message: "5000 bytes as JSON; the limit is 100"},
		{name: "setup", doc: `{"ok":false,"kind":"setup","message":"no resource module"}`,
			status: contract.StatusFailed, code: contract.CodeInternal, message: "no resource module"},
		{name: "long message is capped", doc: `{"ok":false,"kind":"exception","message":"` + strings.Repeat("é", 10000) + `"}`,
			status: contract.StatusFailed, code: contract.CodeScriptError, typ: "Exception", message: "é…"},
		{name: "lone surrogate", doc: `{"ok":false,"kind":"exception","message":"\udc80"}`,
			status: contract.StatusFailed, code: contract.CodeScriptError, typ: "Exception", message: "\uFFFD"},
		{name: "empty", doc: ``, wantErr: true},
		{name: "torn", doc: `{"ok":true,"data":[1,2`, wantErr: true},
		{name: "two documents", doc: `{"ok":true,"data":1}{"ok":true,"data":2}`, wantErr: true},
		{name: "not an object", doc: `[true]`, wantErr: true},
		{name: "null", doc: `null`, wantErr: true},
		{name: "no ok", doc: `{"data":1}`, wantErr: true},
		{name: "ok is not a bool", doc: `{"ok":"yes","data":1}`, wantErr: true},
		{name: "no data", doc: `{"ok":true}`, wantErr: true},
		{name: "unknown kind", doc: `{"ok":false,"kind":"surprise"}`, wantErr: true},
		{name: "NaN", doc: `{"ok":true,"data":NaN}`, wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			o, err := parseResult([]byte(tt.doc), 100)
			if tt.wantErr {
				if err == nil {
					t.Fatalf("parseResult = %+v, nil; want an error", o)
				}
				return
			}
			if err != nil {
				t.Fatalf("parseResult: %v", err)
			}
			checkOutcome(t, o, 100)
			if o.Status != tt.status {
				t.Fatalf("Status = %q, want %q (err %+v)", o.Status, tt.status, o.Err)
			}
			if tt.status == contract.StatusCompleted {
				if string(o.Data) != tt.data {
					t.Errorf("Data = %s, want %s", o.Data, tt.data)
				}
				return
			}
			if o.Err.Code != tt.code || o.Err.Type != tt.typ || !strings.Contains(o.Err.Message, tt.message) {
				t.Errorf("Err = %+v, want code %q, type %q, message containing %q", o.Err, tt.code, tt.typ, tt.message)
			}
		})
	}
}

// A result nested deeper than contract.MaxResultDepth is invalid_output, with the depth and the limit.
func TestParseResultDepth(t *testing.T) {
	t.Parallel()
	nest := func(n int) string { return strings.Repeat("[", n) + strings.Repeat("]", n) }
	o, err := parseResult([]byte(`{"ok":true,"data":`+nest(contract.MaxResultDepth)+`}`), 1<<20)
	if err != nil || o.Status != contract.StatusCompleted {
		t.Fatalf("at the limit: %+v %v", o, err)
	}
	for _, n := range []int{contract.MaxResultDepth + 1, 9000} {
		o, err := parseResult([]byte(`{"ok":true,"data":{"a":`+nest(n-1)+`}}`), 1<<20)
		want := fmt.Sprintf("the result is nested %d deep; the limit is %d", n, contract.MaxResultDepth)
		if err != nil || o.Status != contract.StatusFailed || o.Err.Code != contract.CodeInvalidOutput || o.Err.Message != want {
			t.Fatalf("%d deep: %+v %v, want invalid_output %q", n, o.Err, err, want)
		}
	}
}

// checkOutcome asserts what parseResult promises about every outcome it returns without an error.
func checkOutcome(t *testing.T, o outcome, maxData int) {
	t.Helper()
	switch o.Status {
	case contract.StatusCompleted:
		if o.Err != nil {
			t.Fatalf("completed with Err %+v", o.Err)
		}
		if !json.Valid(o.Data) {
			t.Fatalf("completed with Data that is not JSON: %q", o.Data)
		}
		if len(o.Data) > maxData {
			t.Fatalf("completed with %d bytes of Data, over the limit of %d", len(o.Data), maxData)
		}
		if d := contract.JSONDepth(o.Data); d > contract.MaxResultDepth {
			t.Fatalf("completed with Data nested %d deep", d)
		}
	case contract.StatusFailed:
		if o.Err == nil || o.Err.Code == "" || o.Err.Message == "" {
			t.Fatalf("failed without a code and message: %+v", o.Err)
		}
		if o.Data != nil {
			t.Fatalf("failed with Data %q", o.Data)
		}
		for _, s := range []string{o.Err.Type, o.Err.Message, o.Err.Detail} {
			if !utf8.ValidString(s) {
				t.Fatalf("Err holds invalid UTF-8: %+v", o.Err)
			}
		}
		if len(o.Err.Type) > maxTypeBytes || len(o.Err.Message) > maxMessageBytes+100 || len(o.Err.Detail) > maxTracebackBytes {
			t.Fatalf("Err texts are not capped: type %d, message %d, detail %d bytes",
				len(o.Err.Type), len(o.Err.Message), len(o.Err.Detail))
		}
	default:
		t.Fatalf("unexpected status %q", o.Status)
	}
}

func FuzzParseResult(f *testing.F) {
	for _, seed := range []string{
		`{"ok":true,"data":{"a":[1,2,{"b":null}]}}`,
		`{"ok":true,"data":"` + strings.Repeat("x", 300) + `"}`,
		`{"ok":false,"kind":"exception","type":"ValueError","message":"boom","traceback":"Traceback..."}`,
		`{"ok":false,"kind":"invalid_output","type":"set","message":"no"}`,
		`{"ok":false,"kind":"too_large","size":123456789}`,
		`{"ok":false,"kind":"setup","message":"x"}`,
		`{"ok":true,"data":[1,2`,
		`{"ok":true}{"ok":false}`,
		"{\"ok\":false,\"kind\":\"exception\",\"message\":\"\xff\xfe\\udc80\"}",
		`null`, ``, `[]`, `{"ok":null}`,
		`{"ok":true,"data":` + strings.Repeat(`{"a":`, 200) + `1` + strings.Repeat(`}`, 200) + `}`, // deeper than MaxResultDepth
	} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, doc []byte) {
		const maxData = 256
		o, err := parseResult(doc, maxData)
		if err != nil {
			if o.Status != "" || o.Err != nil || o.Data != nil {
				t.Fatalf("error %v came with an outcome %+v", err, o)
			}
			return
		}
		checkOutcome(t, o, maxData)
	})
}

func TestCapText(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		in   string
		n    int
		want string
	}{
		{"short", 10, "short"},
		{"exactly10!", 10, "exactly10!"},
		{"abcdefghijk", 10, "abcdefg…"},
		{"ééééé", 7, "éé…"}, // never cuts inside a character
		{"a\xffb", 10, "a\uFFFDb"},
	} {
		if got := capText(tt.in, tt.n); got != tt.want || len(got) > tt.n {
			t.Errorf("capText(%q, %d) = %q, want %q", tt.in, tt.n, got, tt.want)
		}
	}
}
