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
