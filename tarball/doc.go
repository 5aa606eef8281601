// Package tarball is imagebake's own tar code: a deterministic writer for
// image layers and agent binary tarballs, and a safe extractor for archives
// imagebake did not make (Forge releases, agent binaries from a store).
package tarball
