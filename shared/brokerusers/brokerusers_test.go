package brokerusers

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"testing"
)

// TestPermissionsMatchTheTaskQueueOnly: the gateway's and the workers' permissions cover the task queue's
// names, server-named queues, the default exchange and direct reply-to, and nothing else.
func TestPermissionsMatchTheTaskQueueOnly(t *testing.T) {
	configure, write, read := Permissions("scraping.tasks")
	for _, c := range []struct {
		re, name string
		want     bool
	}{
		{configure, "scraping.tasks", true},
		{configure, "scraping.tasks.dead", true},
		{configure, "scraping.tasks.webhooks.dead", true},
		{configure, "amq.gen-abc", true},
		{configure, "scrapingXtasks", false},
		{configure, "another", false},
		{configure, "amq.default", false},
		{write, "amq.default", true},
		{write, "another.scraping.tasks", false},
		{read, "amq.rabbitmq.reply-to", true},
		{read, "amq.default", false},
	} {
		if got := regexp.MustCompile(c.re).MatchString(c.name); got != c.want {
			t.Errorf("%s matches %q: %v; want %v", c.re, c.name, got, c.want)
		}
	}
}

func TestRoleTable(t *testing.T) {
	c, w, r := Permissions("q")
	for _, role := range []Role{Gateway, Worker} {
		g, err := For(role, "q")
		if err != nil || g != (Grant{Configure: c, Write: w, Read: r}) {
			t.Errorf("%s: %+v, %v", role, g, err)
		}
	}
	g, err := For(Monitoring, "q")
	if err != nil || g != (Grant{Tags: "monitoring,policymaker", Configure: "^$", Write: "^$", Read: "^$"}) {
		t.Errorf("monitoring: %+v, %v", g, err)
	}
	if g, err := For(Status, "q"); err != nil || g != (Grant{Tags: "monitoring", Configure: "^$", Write: "^$", Read: "^$"}) {
		t.Errorf("status: %+v, %v; want the monitoring tag alone (no policymaker) and no AMQP resource", g, err)
	}
	if _, err := For("admin", "q"); err == nil {
		t.Error("an unknown role has a grant")
	}
}

// TestClientRequests: the requests the client sends (paths escaped, tags comma-separated, basic auth) and
// its errors (status, the start of the body, never the password).
func TestClientRequests(t *testing.T) {
	var got []string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		u, p, _ := r.BasicAuth()
		var body map[string]string
		_ = json.NewDecoder(r.Body).Decode(&body)
		got = append(got, r.Method+" "+r.URL.EscapedPath()+" "+u+":"+p+" tags="+body["tags"])
		if r.Method == http.MethodDelete {
			http.Error(w, `{"error":"Object Not Found","reason":"Not Found"}`+strings.Repeat("x", 2000), http.StatusNotFound)
		}
	}))
	defer srv.Close()
	c := NewClient(srv.URL+"/", "admin", "adminpass", nil)
	ctx := context.Background()
	if err := c.PutUser(ctx, "a/b", "secret-pass", "monitoring policymaker"); err != nil {
		t.Fatal(err)
	}
	if err := c.PutPermissions(ctx, "/", "a/b", "^$", "^$", "^$"); err != nil {
		t.Fatal(err)
	}
	err := c.DeleteUser(ctx, "a/b")
	if !IsNotFound(err) || len(err.Error()) > 700 || strings.Contains(err.Error(), "pass") {
		t.Errorf("DeleteUser: %v; want a bounded 404 *StatusError without credentials", err)
	}
	want := []string{
		"PUT /api/users/a%2Fb admin:adminpass tags=monitoring,policymaker",
		"PUT /api/permissions/%2F/a%2Fb admin:adminpass tags=",
		"DELETE /api/users/a%2Fb admin:adminpass tags=",
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("requests:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}
