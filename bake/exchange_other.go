//go:build !linux

package bake

import "errors"

// exchange is Linux's RENAME_EXCHANGE only.
func exchange(_, _ string) error { return errors.ErrUnsupported }
