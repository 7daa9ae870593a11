package netguard

import (
	"context"
	"errors"
	"net/netip"
	"strings"
	"testing"
)

func TestPolicyCheck(t *testing.T) {
	t.Parallel()
	p, err := ParsePolicy("10.20.0.0/16, 192.168.1.5:8080 [fd00::7]:443 internal.example.com .corp.example")
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		addr string
		port int
		ok   bool
	}{
		{"93.184.215.14", 80, true},
		{"2606:2800:21f:cb07:6820:80da:af6b:8b2c", 443, true},
		{"169.254.169.254", 80, false},
		{"169.254.170.2", 80, false},
		{"fd00:ec2::254", 80, false},
		{"127.0.0.1", 8080, false},
		{"127.1.2.3", 80, false},
		{"::1", 80, false},
		{"::ffff:169.254.169.254", 80, false},
		{"::ffff:127.0.0.1", 80, false},
		{"64:ff9b::a9fe:a9fe", 80, false}, // NAT64 of 169.254.169.254
		{"64:ff9b::5db8:d70e", 80, true},  // NAT64 of a public address
		{"2002:a9fe:a9fe::1", 80, false},  // 6to4 of 169.254.169.254
		{"0.0.0.0", 80, false},
		{"::", 80, false},
		{"10.0.0.1", 80, false},
		{"10.20.3.4", 80, true}, // allowed range
		{"172.16.5.5", 80, false},
		{"192.168.1.5", 8080, true}, // allowed address and port
		{"192.168.1.5", 80, false},
		{"100.64.1.1", 80, false},
		{"fe80::1", 80, false},
		{"fd00::7", 443, true},
		{"fd00::7", 80, false},
		{"224.0.0.1", 80, false},
		{"255.255.255.255", 80, false},
	}
	for _, tt := range tests {
		err := p.Check(netip.MustParseAddr(tt.addr), tt.port)
		if (err == nil) != tt.ok {
			t.Errorf("check(%s, %d) = %v, want allowed=%v", tt.addr, tt.port, err, tt.ok)
		}
	}
	for host, want := range map[string]bool{
		"internal.example.com": true, "a.corp.example": true, "corp.example": false, "example.com": false,
		"internal.example.com.evil": false,
	} {
		if got := p.AllowsName(host, 443); got != want {
			t.Errorf("allowsName(%q) = %v, want %v", host, got, want)
		}
	}
	if _, err := ParsePolicy("10.0.0.0/8, bad/range/x, 1.2.3.4:99999"); err == nil || strings.Count(err.Error(), "EGRESS_ALLOW") != 2 {
		t.Errorf("ParsePolicy of two bad entries = %v", err)
	}
}

func TestParseNumericHost(t *testing.T) {
	t.Parallel()
	for in, want := range map[string]string{
		"2852039166":          "169.254.169.254",
		"0xA9FEA9FE":          "169.254.169.254",
		"0251.0376.0251.0376": "169.254.169.254",
		"0xa9.0xfe.0xa9.0xfe": "169.254.169.254",
		"169.254.43518":       "169.254.169.254",
		"169.16689662":        "169.254.169.254",
		"127.1":               "127.0.0.1",
		"0":                   "0.0.0.0",
		"017700000001":        "127.0.0.1",
	} {
		got, ok := ParseNumericHost(in)
		if !ok || got.String() != want {
			t.Errorf("ParseNumericHost(%q) = %v, %v; want %s", in, got, ok, want)
		}
	}
	for _, in := range []string{"example.com", "1.2.3.4.5", "256.1.1.1", "08.1.1.1", "1..1", "", "4294967296", "1.2.3.256"} {
		if got, ok := ParseNumericHost(in); ok {
			t.Errorf("ParseNumericHost(%q) = %v, want not numeric", in, got)
		}
	}
}

// fakeResolver answers from a map; a missing name does not resolve.
type fakeResolver map[string][]string

func (f fakeResolver) LookupNetIP(_ context.Context, _, host string) ([]netip.Addr, error) {
	var out []netip.Addr
	for _, a := range f[host] {
		out = append(out, netip.MustParseAddr(a))
	}
	if len(out) == 0 {
		return nil, errors.New("no such host")
	}
	return out, nil
}

func TestCheckURL(t *testing.T) {
	t.Parallel()
	p, err := ParsePolicy("10.20.0.0/16 hooks.internal.example")
	if err != nil {
		t.Fatal(err)
	}
	r := fakeResolver{
		"hooks.example.com":      {"93.184.215.14"},
		"mixed.example.com":      {"93.184.215.14", "10.1.2.3"},
		"metadata.example.com":   {"169.254.169.254"},
		"hooks.internal.example": {"10.9.9.9"},
		"allowed.example.com":    {"10.20.1.1"},
	}
	tests := []struct {
		url    string
		reason string // "" allowed
	}{
		{"https://hooks.example.com/cb?x=1", ""},
		{"http://hooks.example.com:8080/cb", ""},
		{"https://93.184.215.14/cb", ""},
		{"https://allowed.example.com/cb", ""},
		{"https://hooks.internal.example/cb", ""}, // named in EGRESS_ALLOW
		{"http://10.20.3.4/cb", ""},               // allowed range
		{"http://169.254.169.254/latest/meta-data/", "forbidden"},
		{"http://2852039166/", "forbidden"}, // 169.254.169.254 spelled as a number
		{"http://[::ffff:169.254.169.254]/", "forbidden"},
		{"http://10.0.0.1/cb", "forbidden"},
		{"http://127.0.0.1:9000/cb", "forbidden"},
		{"http://[::1]/cb", "forbidden"},
		{"https://metadata.example.com/", "forbidden"},
		{"https://mixed.example.com/", "forbidden"}, // one private address is enough
		{"https://nowhere.example.com/", "resolve"},
		{"ftp://hooks.example.com/", "invalid"},
		{"/relative/path", "invalid"},
		{"hooks.example.com/cb", "invalid"},
		{"https://user:pw@hooks.example.com/", "invalid"},
		{"https:///cb", "invalid"},
		{"https://hooks.example.com:0/", "invalid"},
		{"https://hooks.example.com:99999/", "invalid"},
		{"http://%zz/", "invalid"},
		{"https://hooks.example.com/" + strings.Repeat("a", MaxURLLength), "invalid"},
	}
	for _, tt := range tests {
		err := p.CheckURL(context.Background(), r, tt.url)
		var ue *URLError
		switch {
		case tt.reason == "" && err != nil:
			t.Errorf("CheckURL(%.60q) = %v, want allowed", tt.url, err)
		case tt.reason != "" && !errors.As(err, &ue):
			t.Errorf("CheckURL(%.60q) = %v, want a *URLError (%s)", tt.url, err, tt.reason)
		case tt.reason != "" && ue.Reason != tt.reason:
			t.Errorf("CheckURL(%.60q) reason = %s (%v), want %s", tt.url, ue.Reason, err, tt.reason)
		case tt.reason != "" && !strings.Contains(ue.Msg, "callback_url"):
			t.Errorf("CheckURL(%.60q) = %q: the message should name the field", tt.url, ue.Msg)
		}
	}
}
