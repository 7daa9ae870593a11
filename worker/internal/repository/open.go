package repository

import (
	"context"
	"fmt"
	"net/http"

	"github.com/scrapeplatform/platform/shared/s3client"
)

// Repository types, the values of SCRIPT_REPOSITORY_TYPE.
const (
	TypeLocal = "local"
	TypeS3    = "s3"
	TypeGit   = "git"
	TypeHTTP  = "http"
)

// Types lists the repository types.
var Types = []string{TypeLocal, TypeS3, TypeGit, TypeHTTP}

// Options select and configure a repository.
type Options struct {
	// Type is one of Types.
	Type string
	// URL is the folder (local), the repository (git) or the base URL (http). s3 uses S3.
	URL string
	// Git holds the git type's ref and subdirectory; its URL comes from URL.
	Git GitConfig
	S3  S3Config
	// HTTPClient is the http type's client (nil: a default one).
	HTTPClient *http.Client
	// Cache configures the cache of the s3, git and http types.
	Cache CacheOptions
}

// Open returns the repository opts describe. The remote types do not contact their remote here: a worker
// starts while its repository is unreachable, and each Resolve reports the problem (or serves a cached
// copy). Only what can be checked locally (URLs, the git program, the cache folder) is.
func Open(ctx context.Context, opts Options) (Repository, error) {
	switch opts.Type {
	case TypeLocal, "":
		return NewLocal(opts.URL)
	case TypeS3, TypeGit, TypeHTTP:
	default:
		return nil, fmt.Errorf("unknown script repository type %q (want one of %v)", opts.Type, Types)
	}
	r, err := newRemote(opts.Cache) // creates and locks the cache folder first: the git mirror lives in it
	if err != nil {
		return nil, err
	}
	if r.src, err = newSource(ctx, opts, r); err != nil {
		_ = r.Shutdown(ctx)
		return nil, err
	}
	return r, nil
}

func newSource(ctx context.Context, opts Options, r *Remote) (source, error) {
	lim := r.opts.Limits
	switch opts.Type {
	case TypeS3:
		if opts.S3.Bucket == "" {
			return nil, fmt.Errorf("s3: a bucket name is required")
		}
		client, err := NewS3Client(ctx, opts.S3)
		if err != nil {
			return nil, err
		}
		return &s3Source{client: client, bucket: opts.S3.Bucket, prefix: s3client.NormalizePrefix(opts.S3.Prefix), maxBytes: compressedLimit(lim)}, nil
	case TypeGit:
		git := opts.Git
		git.URL = opts.URL
		return newGitSource(git, r.opts.Dir, r.opts.TTL, r.now)
	default:
		return newHTTPSource(opts.URL, opts.HTTPClient, compressedLimit(lim))
	}
}

// compressedLimit bounds a bundle's download: compression never makes an archive much larger than its
// content.
func compressedLimit(lim Limits) int64 {
	return lim.MaxBytes + lim.MaxBytes/8 + int64(lim.MaxFiles+2)*headerAllowed
}
