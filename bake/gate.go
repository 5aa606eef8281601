package bake

import "github.com/imagebake/imagebake/internal/gate"

// The compile gate's errors and defaults, as bake's callers name them.
const (
	// DefaultCompileTimeout bounds one run of the compile gate.
	DefaultCompileTimeout = gate.DefaultTimeout
	// DefaultCompileCacheMax caps the gate's cache of unpacked bases.
	DefaultCompileCacheMax = gate.DefaultCacheMax
)

// ErrCompile marks a release whose Puppet code does not compile on the
// image's own Puppet.
var ErrCompile = gate.ErrCompile
