package main

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/scrapeplatform/platform/worker/internal/repository"
)

// push checks the folder, packs it as a bundle, checks the bundle with the worker's own extractor, and
// uploads it as one object: <prefix><name>.tar.gz. One PUT replaces the script atomically; the object's
// new VersionId (or ETag, in an unversioned bucket) is the version workers report.
func push(ctx context.Context, o *options, dir string, stdout, stderr io.Writer) error {
	s, err := checkScript(dir, o.name, o.limits)
	if err != nil {
		return fmt.Errorf("%s is not a valid script folder:\n%w", dir, err)
	}
	for _, w := range s.warnings {
		fmt.Fprintln(stderr, "warning:", w)
	}
	if len(s.ignored) > 0 {
		fmt.Fprintf(stderr, "left out: %s\n", strings.Join(s.ignored, ", "))
	}
	var bundle bytes.Buffer
	if err := repository.Pack(&bundle, s.dir, s.files); err != nil {
		return err
	}
	if err := selfCheck(bundle.Bytes(), o.limits); err != nil {
		return fmt.Errorf("the bundle does not pass the worker's checks: %w", err)
	}
	sum := sha256.Sum256(bundle.Bytes())
	fmt.Fprintf(stderr, "checked %s: %d files, %s, bundle %s, sha256 %s\n", s.name, len(s.files), humanBytes(s.size()),
		humanBytes(int64(bundle.Len())), hex.EncodeToString(sum[:])[:16])
	if o.dryRun {
		fmt.Fprintf(stdout, "%s: ok (not uploaded)\n", s.name)
		return nil
	}
	if err := o.checkS3(); err != nil {
		return err
	}
	bar := newProgress(stderr, o.progress, int64(bundle.Len()))
	o.s3.WrapHTTPClient = bar.wrap
	client, err := repository.NewS3Client(ctx, o.s3)
	if err != nil {
		return err
	}
	key := o.s3.Prefix + s.name + repository.BundleSuffix
	where := fmt.Sprintf("s3://%s/%s", o.s3.Bucket, key)
	bar.start("uploading " + where)
	out, err := client.PutObject(ctx, &s3.PutObjectInput{
		Bucket:         &o.s3.Bucket,
		Key:            &key,
		Body:           bytes.NewReader(bundle.Bytes()),
		ContentLength:  aws.Int64(int64(bundle.Len())),
		ContentType:    aws.String("application/gzip"),
		ChecksumSHA256: aws.String(base64.StdEncoding.EncodeToString(sum[:])),
		Metadata: map[string]string{
			repository.BundleSHA256Metadata: hex.EncodeToString(sum[:]),
			"files":                         strconv.Itoa(len(s.files)),
		},
	})
	bar.finish(err == nil)
	if err != nil {
		return fmt.Errorf("upload %s: %w", where, err)
	}
	version := repository.S3Version(aws.ToString(out.VersionId), aws.ToString(out.ETag))
	fmt.Fprintf(stdout, "%s: version %s (%s, %s)\n", s.name, version, where, humanBytes(int64(bundle.Len())))
	if strings.HasPrefix(version, "etag:") {
		fmt.Fprintln(stderr, "note: the bucket is not versioned; the version is the ETag. Enable versioning to keep old versions.")
	}
	return nil
}

// selfCheck extracts the bundle as a worker would, into a temporary folder.
func selfCheck(bundle []byte, lim repository.Limits) error {
	tmp, err := os.MkdirTemp("", "scrapectl-check-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)
	_, err = repository.ExtractTarGz(bytes.NewReader(bundle), tmp, lim)
	return err
}

// list prints the published scripts: name, version, bundle size, last change.
func list(ctx context.Context, o *options, stdout, stderr io.Writer) error {
	if err := o.checkS3(); err != nil {
		return err
	}
	client, err := repository.NewS3Client(ctx, o.s3)
	if err != nil {
		return err
	}
	tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "NAME\tVERSION\tSIZE\tUPDATED")
	p := s3.NewListObjectsV2Paginator(client, &s3.ListObjectsV2Input{Bucket: &o.s3.Bucket, Prefix: &o.s3.Prefix})
	count := 0
	for p.HasMorePages() {
		page, err := p.NextPage(ctx)
		if err != nil {
			return fmt.Errorf("list s3://%s/%s: %w", o.s3.Bucket, o.s3.Prefix, err)
		}
		for _, obj := range page.Contents {
			key := aws.ToString(obj.Key)
			name := repository.NameFromKey(o.s3.Prefix, key)
			if name == "" {
				fmt.Fprintf(stderr, "ignoring s3://%s/%s: not <prefix><script name>%s\n", o.s3.Bucket, key, repository.BundleSuffix)
				continue
			}
			// The listing has no VersionId: ask for the object's (a versioned bucket's version).
			head, err := client.HeadObject(ctx, &s3.HeadObjectInput{Bucket: &o.s3.Bucket, Key: &key})
			if err != nil {
				return fmt.Errorf("head s3://%s/%s: %w", o.s3.Bucket, key, err)
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", name, repository.S3Version(aws.ToString(head.VersionId), aws.ToString(head.ETag)),
				humanBytes(aws.ToInt64(head.ContentLength)), aws.ToTime(head.LastModified).UTC().Format(time.RFC3339))
			count++
		}
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	if count == 0 {
		fmt.Fprintf(stderr, "no scripts under s3://%s/%s\n", o.s3.Bucket, o.s3.Prefix)
	}
	return nil
}

func humanBytes(n int64) string {
	switch {
	case n >= 1<<20:
		return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20))
	case n >= 1<<10:
		return fmt.Sprintf("%.1f KiB", float64(n)/(1<<10))
	}
	return fmt.Sprintf("%d B", n)
}
