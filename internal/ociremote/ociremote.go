// Package ociremote is how imagebake reaches OCI registries: references
// parsed with the insecure-registry rule (plain HTTP only to loopback and
// named hosts), the Docker config's credentials, errors that say what was
// wanted and what the registry answered, and a content-addressed cache of
// pulled base images.
package ociremote

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"strings"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/remote/transport"

	"github.com/imagebake/imagebake/internal/failure"
	"github.com/imagebake/imagebake/internal/stall"
)

// Options say how to reach registries.
type Options struct {
	// Insecure names registries (host or host:port) that may be reached
	// over plain HTTP; loopback registries always may. Every other
	// registry is spoken to over HTTPS only.
	Insecure []string
	// Keychain finds credentials; nil is the Docker config's
	// (DOCKER_CONFIG, ~/.docker/config.json, credential helpers).
	Keychain authn.Keychain
	// Transport, when set, carries the requests (tests).
	Transport http.RoundTripper
	// Stall stops a request whose response sends nothing for this long
	// (0: stall.Default), naming the registry and the blob.
	Stall time.Duration
}

// loopback says whether host (with or without a port) is this machine.
func loopback(host string) bool {
	if h, _, err := net.SplitHostPort(host); err == nil {
		host = h
	}
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(strings.Trim(host, "[]"))
	return ip != nil && ip.IsLoopback()
}

// plainHTTP says whether registry host may be spoken to over HTTP.
func (o Options) plainHTTP(host string) bool {
	if loopback(host) {
		return true
	}
	name := host
	if h, _, err := net.SplitHostPort(host); err == nil {
		name = h
	}
	for _, h := range o.Insecure {
		h = strings.TrimSpace(h)
		// HOST names the host on any port; HOST:PORT that port only
		if strings.EqualFold(h, host) || strings.EqualFold(strings.Trim(h, "[]"), strings.Trim(name, "[]")) {
			return true
		}
	}
	return false
}

// withoutCredentials returns s with any scheme kept and user info in its
// host part replaced by "…", and whether s had a scheme or user info: a
// registry reference carries neither.
func withoutCredentials(s string) (string, bool) {
	scheme, rest := "", s
	if i := strings.Index(rest, "://"); i >= 0 {
		scheme, rest = rest[:i+3], rest[i+3:]
	}
	host, path, slash := strings.Cut(rest, "/")
	if i := strings.LastIndex(host, "@"); i >= 0 {
		host = "…@" + host[i+1:]
	} else if scheme == "" {
		return s, false
	}
	if slash {
		host += "/" + path
	}
	return scheme + host, true
}

// checkNoCredentials refuses a reference with a scheme or user info,
// without repeating the credential.
func checkNoCredentials(what, s string) error {
	if shown, bad := withoutCredentials(s); bad {
		return fmt.Errorf("%w: %s %q: a registry reference is REGISTRY/REPO[:TAG|@DIGEST], with no scheme or credentials; credentials come from the Docker config (docker login, DOCKER_CONFIG, credential helpers)", failure.ErrUsage, what, shown)
	}
	return nil
}

// Repository parses REGISTRY/REPO (no tag, no digest).
func (o Options) Repository(s string) (name.Repository, error) {
	if err := checkNoCredentials("registry repository", s); err != nil {
		return name.Repository{}, err
	}
	var opts []name.Option
	if o.plainHTTP(strings.SplitN(s, "/", 2)[0]) {
		opts = append(opts, name.Insecure)
	}
	r, err := name.NewRepository(s, append(opts, name.StrictValidation)...)
	if err != nil {
		return name.Repository{}, fmt.Errorf("%w: registry repository %q: %v (want REGISTRY/REPO, such as registry.example.com/golden/example)", failure.ErrUsage, s, err)
	}
	return r, nil
}

// Reference parses REGISTRY/REPO:TAG or REGISTRY/REPO@sha256:DIGEST.
func (o Options) Reference(s string) (name.Reference, error) {
	if err := checkNoCredentials("image reference", s); err != nil {
		return nil, err
	}
	var opts []name.Option
	if o.plainHTTP(strings.SplitN(s, "/", 2)[0]) {
		opts = append(opts, name.Insecure)
	}
	r, err := name.ParseReference(s, append(opts, name.StrictValidation)...)
	if err != nil {
		return nil, fmt.Errorf("%w: image reference %q: %v (want REGISTRY/REPO:TAG or REGISTRY/REPO@sha256:DIGEST)", failure.ErrUsage, s, err)
	}
	return r, nil
}

// Remote is the go-containerregistry options for the requests of one
// operation.
func (o Options) Remote(ctx context.Context) []remote.Option {
	kc := o.Keychain
	if kc == nil {
		kc = authn.DefaultKeychain
	}
	base := o.Transport
	if base == nil {
		base = remote.DefaultTransport
	}
	opts := []remote.Option{remote.WithContext(ctx), remote.WithAuthFromKeychain(kc),
		remote.WithTransport(httpGuard{base: stall.Transport(base, o.Stall), o: o}), remote.WithUserAgent("imagebake")}
	// one pusher and one puller for every request made with these options:
	// the registry is pinged and the token fetched once, not per request
	if pusher, err := remote.NewPusher(opts...); err == nil {
		opts = append(opts, remote.Reuse(pusher))
	}
	if puller, err := remote.NewPuller(opts...); err == nil {
		opts = append(opts, remote.Reuse(puller))
	}
	return opts
}

// httpGuard refuses plain HTTP to registries not allowed it: the library
// would otherwise fall back to HTTP for private addresses on its own.
type httpGuard struct {
	base http.RoundTripper
	o    Options
}

func (g httpGuard) RoundTrip(r *http.Request) (*http.Response, error) {
	if r.URL.Scheme == "http" && !g.o.plainHTTP(r.URL.Host) {
		return nil, fmt.Errorf("plain HTTP to %s refused: only loopback registries and those named with --insecure-registry or IMAGEBAKE_INSECURE_REGISTRIES are reached without TLS", r.URL.Host)
	}
	return g.base.RoundTrip(r)
}

// Describe turns a registry error into one that says what was wanted,
// where, and what the registry answered, classified for the exit code;
// the registry's error stays in the chain (errors.As finds it).
func Describe(what string, err error) error {
	if err == nil {
		return nil
	}
	var te *transport.Error
	if errors.As(err, &te) {
		switch te.StatusCode {
		case http.StatusNotFound:
			return fmt.Errorf("%s: %w (the registry answered %d: %w)", what, failure.ErrNotFound, te.StatusCode, te)
		case http.StatusUnauthorized, http.StatusForbidden:
			return fmt.Errorf("%s: the registry refused the credentials (%d); log in with docker login or a credential helper (DOCKER_CONFIG): %w", what, te.StatusCode, te)
		case http.StatusTooManyRequests:
			return fmt.Errorf("%s: the registry is rate limiting (429); try again later: %w", what, te)
		}
		return fmt.Errorf("%s: the registry answered %d: %w", what, te.StatusCode, te)
	}
	if strings.Contains(err.Error(), "error verifying") {
		return fmt.Errorf("%s: the registry served content that does not match its digest: %w: %v", what, failure.ErrVerify, err)
	}
	return fmt.Errorf("%s: %w", what, err)
}

// IsNotFound says whether err is the registry answering 404.
func IsNotFound(err error) bool {
	var te *transport.Error
	return errors.As(err, &te) && te.StatusCode == http.StatusNotFound
}
