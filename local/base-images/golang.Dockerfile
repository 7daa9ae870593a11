# Stand-in for the official golang image (base-images.sh): the Go installed on the build machine, on
# debian:bookworm-slim, with the machine's CA bundle so `go mod download` reaches the module proxy the
# machine reaches.
FROM debian:bookworm-slim
COPY go /usr/local/go
COPY ca-certificates.crt /etc/ssl/certs/ca-certificates.crt
ENV GOPATH=/go PATH=/go/bin:/usr/local/go/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
WORKDIR /go
