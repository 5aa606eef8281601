// Package redact drops what must not be shown of a URL.
package redact

import "net/url"

// WithoutUser is s without the user information of a URL (user:token@):
// for URLs shown to people or recorded (provenance, messages). Anything
// that is not a URL is returned as it is. (A git remote keeps an ssh
// user name, which it needs to fetch: gitcache.Redact.)
func WithoutUser(s string) string {
	u, err := url.Parse(s)
	if err != nil || u.User == nil {
		return s
	}
	u.User = nil
	return u.String()
}

// URL is u as shown in a message about a request: without its user
// information, query or fragment, where tokens and signatures travel
// (a presigned S3 URL, ?access_token=).
func URL(u *url.URL) string {
	c := *u
	c.User, c.RawQuery, c.Fragment, c.RawFragment = nil, "", "", ""
	return c.String()
}
