package queuedepth

import "testing"

func FuzzDecodeQueue(f *testing.F) {
	f.Add([]byte(`{"name":"scraping_tasks","messages_ready":3,"messages_unacknowledged":2,"messages":5,"consumers":1}`))
	f.Add([]byte(`{"name":"scraping_tasks"}`))
	f.Add([]byte(`{"messages_ready":-1}`))
	f.Add([]byte(`[]`))
	f.Fuzz(func(t *testing.T, body []byte) {
		q, err := DecodeQueue(body)
		if err == nil && (q.Ready < 0 || q.Unacknowledged < 0 || q.Messages < 0 || q.Consumers < 0) {
			t.Fatalf("negative counter accepted: %+v", q)
		}
	})
}

func FuzzDecodeNodes(f *testing.F) {
	f.Add([]byte(`[{"name":"rabbit@a","running":true,"mem_used":10,"mem_limit":100,"mem_alarm":false,"disk_free_alarm":false}]`))
	f.Add([]byte(`{}`))
	f.Fuzz(func(t *testing.T, body []byte) {
		nodes, err := DecodeNodes(body)
		if err != nil {
			return
		}
		var s Sample
		s.SetNodes(nodes)
		if s.ResourceAlarms > len(nodes) {
			t.Fatalf("%d alarms from %d nodes", s.ResourceAlarms, len(nodes))
		}
	})
}
