package runner

import (
	"context"
	"io"
	"log/slog"
	"strings"
	"testing"
)

func TestOutputTail(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name  string
		input string
		cap   int
		want  string
	}{
		{"short", "a\nb\n", 16, "a\nb\n"},
		{"keeps the end", "line 1\nline 2\nline 3\n", 8, "\nline 3\n"},
		{"long line without newline", strings.Repeat("x", 200_000) + "end", 5, "x" + "xend"},
		{"does not start inside a character", "aé" + "bcd", 4, "bcd"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			o := newOutput(slog.New(slog.DiscardHandler), tt.cap)
			o.consume(t.Context(), "stdout", strings.NewReader(tt.input))
			if got := o.tail(); got != tt.want {
				t.Errorf("tail = %q, want %q", got, tt.want)
			}
		})
	}
}

func TestOutputLogging(t *testing.T) {
	t.Parallel()
	rec := &lineRecorder{}
	o := newOutput(slog.New(rec), 64)
	long := strings.Repeat("y", 3*readBufferBytes)
	o.consume(t.Context(), "stderr", strings.NewReader("first\r\n"+long+"\nafter\nno newline at the end"))
	want := []string{"first", long[:maxLogLineBytes], "after", "no newline at the end"}
	if len(rec.lines) != len(want) {
		t.Fatalf("logged %d lines, want %d", len(rec.lines), len(want))
	}
	for i := range want {
		if rec.lines[i] != want[i] {
			t.Errorf("line %d = %.40q (%d bytes), want %.40q (%d bytes)", i, rec.lines[i], len(rec.lines[i]), want[i], len(want[i]))
		}
	}
	if !rec.cut[1] || rec.cut[0] || rec.cut[2] {
		t.Errorf("cut flags = %v, want only the long line marked", rec.cut)
	}
}

func TestOutputLogBudget(t *testing.T) {
	t.Parallel()
	rec := &lineRecorder{}
	o := newOutput(slog.New(rec), 64)
	pr, pw := io.Pipe()
	go func() {
		line := strings.Repeat("z", 1000) + "\n"
		for range 2 * logBudgetBytes / len(line) {
			_, _ = io.WriteString(pw, line)
		}
		_ = pw.Close()
	}()
	o.consume(t.Context(), "stdout", pr)
	o.finish(context.Background())
	logged := 0
	for _, l := range rec.lines {
		logged += len(l)
	}
	if logged > logBudgetBytes || logged < logBudgetBytes/2 {
		t.Errorf("logged %d bytes of lines, want close to the budget of %d", logged, logBudgetBytes)
	}
	if len(rec.warnings) != 2 {
		t.Errorf("warnings = %q, want the budget notice and the final count", rec.warnings)
	}
}

// lineRecorder is a slog handler that keeps the "line" and "cut" attributes of script output records.
type lineRecorder struct {
	lines    []string
	cut      []bool
	warnings []string
}

func (h *lineRecorder) Enabled(context.Context, slog.Level) bool { return true }
func (h *lineRecorder) WithAttrs([]slog.Attr) slog.Handler       { return h }
func (h *lineRecorder) WithGroup(string) slog.Handler            { return h }
func (h *lineRecorder) Handle(_ context.Context, r slog.Record) error {
	if r.Level >= slog.LevelWarn {
		h.warnings = append(h.warnings, r.Message)
		return nil
	}
	cut := false
	r.Attrs(func(a slog.Attr) bool {
		switch a.Key {
		case "line":
			h.lines = append(h.lines, a.Value.String())
		case "cut":
			cut = a.Value.Bool()
		}
		return true
	})
	h.cut = append(h.cut, cut)
	return nil
}
