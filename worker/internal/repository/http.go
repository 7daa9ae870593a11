package repository

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"time"
)

// httpSource fetches bundles <base><name>.tar.gz over HTTP(S) with conditional requests: the cached copy's
// ETag goes in If-None-Match and its Last-Modified in If-Modified-Since, so an unchanged script costs one
// 304 answer without a body.
type httpSource struct {
	base     *url.URL
	client   *http.Client
	maxBytes int64
}

func newHTTPSource(base string, client *http.Client, maxBytes int64) (*httpSource, error) {
	u, err := url.Parse(base)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("http: %q is not an http(s) URL", RedactURL(base))
	}
	if !strings.HasSuffix(u.Path, "/") {
		u.Path += "/"
	}
	u.RawQuery, u.Fragment = "", ""
	if client == nil {
		client = &http.Client{Transport: http.DefaultTransport}
	}
	return &httpSource{base: u, client: client, maxBytes: maxBytes}, nil
}

func (h *httpSource) describe() string { return RedactURL(h.base.String()) }

func (h *httpSource) fetch(ctx context.Context, name string, have remoteState) (fetched, error) {
	u := h.base.JoinPath(name + BundleSuffix)
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u.String(), nil)
	if err != nil {
		return fetched{}, err
	}
	// Ask for the bytes as stored: a server that adds Content-Encoding: gzip to a .tar.gz would otherwise
	// have Go's transport decompress it on the way.
	req.Header.Set("Accept-Encoding", "identity")
	if have.Validator != "" {
		req.Header.Set("If-None-Match", have.Validator)
	}
	if have.LastModified != "" {
		req.Header.Set("If-Modified-Since", have.LastModified)
	}
	resp, err := h.client.Do(req)
	if err != nil {
		return fetched{}, fmt.Errorf("GET %s: %w", RedactURL(u.String()), redactURLError(err))
	}
	switch resp.StatusCode {
	case http.StatusNotModified:
		resp.Body.Close()
		if have == (remoteState{}) {
			return fetched{}, fmt.Errorf("GET %s: 304 Not Modified to an unconditional request", RedactURL(u.String()))
		}
		return fetched{state: have}, nil
	case http.StatusNotFound, http.StatusGone:
		resp.Body.Close()
		return fetched{}, ErrNotFound
	case http.StatusOK:
	default:
		resp.Body.Close()
		return fetched{}, fmt.Errorf("GET %s: %s", RedactURL(u.String()), resp.Status)
	}
	if resp.ContentLength > h.maxBytes {
		resp.Body.Close()
		return fetched{}, fmt.Errorf("%w: %s is %d bytes; the limit is %d", ErrInvalidBundle, RedactURL(u.String()), resp.ContentLength, h.maxBytes)
	}
	state := remoteState{Validator: resp.Header.Get("ETag"), LastModified: resp.Header.Get("Last-Modified")}
	switch {
	case state.Validator != "":
		state.Version = "etag:" + strings.Trim(strings.TrimPrefix(state.Validator, "W/"), `"`)
	case state.LastModified != "":
		if t, err := http.ParseTime(state.LastModified); err == nil {
			state.Version = "modified:" + t.UTC().Format(time.RFC3339)
		}
	}
	// Version "" makes the cache use the bundle's own SHA-256. A bundle served straight from an S3 bucket
	// (a website endpoint, CloudFront) carries scrapectl's checksum in x-amz-meta-sha256.
	return fetched{
		state:  state,
		body:   resp.Body,
		gzip:   true,
		size:   resp.ContentLength,
		sha256: resp.Header.Get("X-Amz-Meta-" + BundleSHA256Metadata),
	}, nil
}

// redactURLError strips the URL (which may hold credentials) from a *url.Error: the caller names it.
func redactURLError(err error) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		return ue.Err
	}
	return err
}
