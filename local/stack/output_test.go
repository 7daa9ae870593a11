package stack

import (
	"strings"
	"testing"
)

func TestLineWriter(t *testing.T) {
	t.Parallel()
	long := strings.Repeat("x", maxLineLen+10)
	tests := []struct {
		name     string
		in       string
		keep     int
		wantOut  string
		wantTail []string
	}{
		{"lines", "a\nb\n", 5, "[p] a\n[p] b\n", []string{"a", "b"}},
		{"crlf and a last line without newline", "a\r\nb", 5, "[p] a\n[p] b\n", []string{"a", "b"}},
		{"empty lines kept", "\n\nz\n", 5, "[p] \n[p] \n[p] z\n", []string{"", "", "z"}},
		{"tail keeps the last lines in order", "1\n2\n3\n4\n5\n", 3, "[p] 1\n[p] 2\n[p] 3\n[p] 4\n[p] 5\n", []string{"3", "4", "5"}},
		{"nothing", "", 3, "", nil},
		{"long line split", long + "\n", 5,
			"[p] " + long[:maxLineLen] + "\n[p] " + long[maxLineLen:] + "\n",
			[]string{long[:maxTailLineLen] + "…", long[maxLineLen:]}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			var out strings.Builder
			w := newLineWriter("p", &out, tt.keep)
			w.copyFrom(strings.NewReader(tt.in))
			if out.String() != tt.wantOut {
				t.Errorf("output:\n got %.200q\nwant %.200q", out.String(), tt.wantOut)
			}
			got := w.tail()
			if strings.Join(got, "|") != strings.Join(tt.wantTail, "|") || len(got) != len(tt.wantTail) {
				t.Errorf("tail: got %.200q, want %.200q", got, tt.wantTail)
			}
		})
	}
}
