package main

import (
	"bytes"
	"net"
	"strconv"
	"strings"
	"sync"
)

// framingConn watches the HTTP/1.1 requests that arrive on a connection as the server reads them, to note
// for each one whether its header section held both Content-Length and Transfer-Encoding. Go's server
// accepts such a request (Transfer-Encoding wins) and deletes Content-Length before any handler could see
// it, so the raw bytes are the only place left to look. It follows the framing the server follows (a body
// of Content-Length bytes, or chunks up to the last one and its trailers) to find where each header section
// starts; on anything it does not understand it stops watching, and the server's own parser (which answers
// 400 to malformed input) decides.
type framingConn struct {
	net.Conn

	mu        sync.Mutex
	state     framingState
	line      []byte // the line being read (headers, chunk size, trailers)
	lines     int    // lines of the current header section so far
	hasCL     bool
	hasTE     bool
	remaining int64  // body or chunk bytes still to come
	conflicts []bool // per request read so far and not yet served: both headers present
}

type framingState int

const (
	inHeader    framingState = iota // reading a header section
	inBody                          // remaining bytes of a Content-Length body
	inChunkSize                     // reading a chunk-size line
	inChunkData                     // remaining bytes of a chunk, then its CRLF
	inChunkCRLF                     // the CRLF after a chunk's data (remaining: bytes of it left)
	inTrailer                       // trailer lines after the last chunk
	stopped                         // gave up: something this watcher does not follow
)

// maxFramingLine bounds a line the watcher keeps; a longer header line is the server's 431 anyway.
const maxFramingLine = maxHeaderBytes + headerSlop

func (c *framingConn) Read(p []byte) (int, error) {
	n, err := c.Conn.Read(p)
	if n > 0 {
		c.mu.Lock()
		c.feed(p[:n])
		c.mu.Unlock()
	}
	return n, err
}

// nextRequestConflicts reports whether the next request to be served had both Content-Length and
// Transfer-Encoding. The server serves a connection's requests one at a time, in order, and each passes
// guardBody exactly once, so the answers line up with the header sections seen.
func (c *framingConn) nextRequestConflicts() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.conflicts) == 0 {
		return false
	}
	conflict := c.conflicts[0]
	c.conflicts = c.conflicts[1:]
	return conflict
}

// feed advances the watcher over b (c.mu held).
func (c *framingConn) feed(b []byte) {
	for len(b) > 0 && c.state != stopped {
		switch c.state {
		case inBody, inChunkData:
			k := int64(len(b))
			if k > c.remaining {
				k = c.remaining
			}
			c.remaining -= k
			b = b[k:]
			if c.remaining == 0 {
				if c.state == inBody {
					c.state = inHeader
				} else {
					c.state, c.remaining = inChunkCRLF, 2
				}
			}
		case inChunkCRLF:
			// "\r\n" (or a bare "\n", which the server also accepts).
			if b[0] == '\n' {
				c.state = inChunkSize
			} else if b[0] != '\r' {
				c.state = stopped
			}
			b = b[1:]
		default: // line-oriented states
			i := bytes.IndexByte(b, '\n')
			if i < 0 {
				c.appendLine(b)
				return
			}
			c.appendLine(b[:i])
			b = b[i+1:]
			line := bytes.TrimSuffix(c.line, []byte("\r"))
			c.line = c.line[:0]
			c.endLine(line)
		}
	}
}

func (c *framingConn) appendLine(b []byte) {
	if len(c.line)+len(b) > maxFramingLine {
		c.state = stopped
		return
	}
	c.line = append(c.line, b...)
}

// endLine handles one complete line in a line-oriented state.
func (c *framingConn) endLine(line []byte) {
	switch c.state {
	case inHeader:
		if len(line) > 0 {
			if c.lines > 0 { // the first line is the request line
				name, value, _ := strings.Cut(string(line), ":")
				switch strings.ToLower(strings.TrimSpace(name)) {
				case "content-length":
					c.hasCL = true
					if n, err := strconv.ParseInt(strings.TrimSpace(value), 10, 64); err == nil && n >= 0 {
						c.remaining = n
					} else {
						c.state = stopped // the server refuses it
					}
				case "transfer-encoding":
					c.hasTE = true
				}
			}
			c.lines++
			return
		}
		if c.lines == 0 {
			return // an empty line before a request line
		}
		c.conflicts = append(c.conflicts, c.hasCL && c.hasTE)
		switch {
		case c.hasTE:
			c.state = inChunkSize
		case c.hasCL && c.remaining > 0:
			c.state = inBody
		}
		c.lines, c.hasCL, c.hasTE = 0, false, false
	case inChunkSize:
		size, _, _ := strings.Cut(string(line), ";")
		n, err := strconv.ParseInt(strings.TrimSpace(size), 16, 64)
		switch {
		case err != nil || n < 0:
			c.state = stopped
		case n == 0:
			c.state = inTrailer
		default:
			c.state, c.remaining = inChunkData, n
		}
	case inTrailer:
		if len(line) == 0 {
			c.state = inHeader
		}
	}
}
