package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"
	"golang.org/x/term"

	"github.com/imagebake/imagebake/internal/cosignkey"
	"github.com/imagebake/imagebake/internal/failure"
	"github.com/imagebake/imagebake/manifests/catalog"
	"github.com/imagebake/imagebake/manifests/manifest"
	"github.com/imagebake/imagebake/manifests/signing"
	"github.com/imagebake/imagebake/release"
)

// keyFlags name the signing key and the trusted public keys:
// --key > IMAGEBAKE_KEY, --trusted-key > IMAGEBAKE_TRUSTED_KEYS (comma-separated);
// the password of an encrypted key comes from IMAGEBAKE_KEY_PASSWORD.
type keyFlags struct {
	key     string
	trusted []string
}

func (f *keyFlags) register(cmd *cobra.Command, signing bool) {
	if signing {
		cmd.Flags().StringVar(&f.key, "key", "", "minisign private key to sign with (default $IMAGEBAKE_KEY)")
	}
	cmd.Flags().StringArrayVar(&f.trusted, "trusted-key", nil, "trusted minisign public key; repeatable (default $IMAGEBAKE_TRUSTED_KEYS)")
}

func (f *keyFlags) keyring() (*signing.Keyring, error) {
	return signing.LoadKeyring(listSetting(f.trusted, envTrusted)...)
}

// signer loads the signing key; its own public key is trusted too. A key
// is decrypted once per process (scrypt, as minisign's: seconds and about
// 1 GiB for each decryption), however many steps sign.
func (f *keyFlags) signer(kr *signing.Keyring) (*signing.Signer, error) {
	k := stringSetting(f.key, envKey)
	if k == "" {
		return nil, usageErr("no signing key: give --key or set IMAGEBAKE_KEY (make one with `imagebake key generate`)")
	}
	s, err := loadSigner(k, os.Getenv(envKeyPass))
	if err != nil {
		return nil, err
	}
	kr.Add(s.Public(), k)
	return s, nil
}

// catalogGuard checks catalogs read against rollback (the serials seen
// are remembered in the cache directory) and expiry at now (zero: the
// clock).
func catalogGuard(cache string, now time.Time) (*catalog.Guard, error) {
	dir, err := cacheDir(cache)
	if err != nil {
		return nil, err
	}
	return &catalog.Guard{State: filepath.Join(dir, catalog.StateFile), Now: now}, nil
}

// openCatalog reads the catalog of store (a directory, its URL or the URL
// of its catalog.toml), its signature and serial checked.
func openCatalog(ctx context.Context, store string, kr *signing.Keyring) (*catalog.Opened, error) {
	guard, err := catalogGuard("", time.Time{})
	if err != nil {
		return nil, err
	}
	return catalog.Open(ctx, store, kr, nil, guard)
}

// openWriter opens the store at dest for writing, its serials checked.
func openWriter(ctx context.Context, dest string, kr *signing.Keyring, mustExist bool) (catalog.Writer, error) {
	guard, err := catalogGuard("", time.Time{})
	if err != nil {
		return nil, err
	}
	return catalog.OpenWriter(ctx, dest, kr, mustExist, guard)
}

// updateCatalog applies change to the store's catalog, signed with the
// key, and says on w when the catalog written is expired or about to be.
func (f *keyFlags) updateCatalog(ctx context.Context, store string, w io.Writer, change func(*catalog.Catalog) error) (*catalog.Catalog, error) {
	if store == "" {
		return nil, usageErr("--store is required")
	}
	kr, err := f.keyring()
	if err != nil {
		return nil, err
	}
	st, err := openWriter(ctx, store, kr, true)
	if err != nil {
		return nil, err
	}
	signer, err := f.signer(kr)
	if err != nil {
		return nil, err
	}
	c, err := st.Update(ctx, signer, change)
	if err != nil {
		return nil, err
	}
	warnExpiry(w, st.Path(), c)
	return c, nil
}

// warnExpiry tells a publisher that readers refuse, or soon will refuse,
// the catalog just written.
func warnExpiry(w io.Writer, where string, c *catalog.Catalog) {
	notice, err := (*catalog.Guard)(nil).Expiry(where, c)
	switch {
	case err != nil:
		fmt.Fprintf(w, "warning: readers refuse this catalog: %v\n", err)
	case notice != "":
		fmt.Fprintln(w, notice)
	}
}

func newKeyCommand(g *globals) *cobra.Command {
	cmd := &cobra.Command{Use: "key", Short: "Manage signing keys (minisign format; cosign with --cosign)"}
	var dir, name string
	var cosign, unencrypted bool
	gen := &cobra.Command{
		Use:   "generate [--dir D] [--name N] [--cosign] [--unencrypted]",
		Short: "Make a key pair: N.key (private, password-protected) and N.pub",
		Long: `Make an ed25519 key pair in minisign's format (N.key, N.pub) for the
catalog and manifests, or with --cosign an ECDSA P-256 pair in cosign's
format (cosign.key, cosign.pub) for push --cosign-key.

The secret key is encrypted with a password: $IMAGEBAKE_KEY_PASSWORD
($COSIGN_PASSWORD with --cosign) when set, as in CI; else it is asked for
twice on the terminal. --unencrypted writes it in the clear (anyone who
reads the file can sign releases).`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			env := envKeyPass
			if cosign {
				env = "COSIGN_PASSWORD"
				if !cmd.Flags().Changed("name") {
					name = "cosign"
				}
			}
			pass, err := newKeyPassword(cmd, env, unencrypted)
			if err != nil {
				return err
			}
			var pub, key string
			if cosign { // as cosign generate-key-pair writes it
				pub, key, err = cosignkey.Generate(dir, name, []byte(pass))
			} else {
				pub, key, err = signing.Generate(dir, name, pass)
			}
			if err != nil {
				return err
			}
			if pass == "" {
				fmt.Fprintf(progressOf(cmd, g), "warning: %s is not encrypted (--unencrypted): anyone who can read it can sign releases\n", key)
			}
			fmt.Fprintf(cmd.OutOrStdout(), "%s\n%s\n", pub, key)
			return nil
		},
	}
	gen.Flags().StringVar(&dir, "dir", ".", "where to write the keys")
	gen.Flags().StringVar(&name, "name", "imagebake", "file name of the keys, without extension (cosign with --cosign)")
	gen.Flags().BoolVar(&cosign, "cosign", false, "a cosign key pair (ECDSA P-256) for push --cosign-key, readable by cosign")
	gen.Flags().BoolVar(&unencrypted, "unencrypted", false, "write the secret key unencrypted (no password)")
	cmd.AddCommand(gen)
	return cmd
}

// newKeyPassword is the password a new secret key is encrypted with: the
// variable env when set (CI), "" with --unencrypted, else asked twice on
// the terminal. Without any of them the key is not written.
func newKeyPassword(cmd *cobra.Command, env string, unencrypted bool) (string, error) {
	if p := os.Getenv(env); p != "" {
		return p, nil
	}
	if unencrypted {
		return "", nil
	}
	fd := int(os.Stdin.Fd())
	if !term.IsTerminal(fd) {
		return "", usageErr("the secret key would be written in the clear: set %s to its password (CI), run on a terminal to be asked, or pass --unencrypted", env)
	}
	ask := func(prompt string) (string, error) {
		fmt.Fprint(cmd.ErrOrStderr(), prompt)
		b, err := term.ReadPassword(fd)
		fmt.Fprintln(cmd.ErrOrStderr())
		return string(b), err
	}
	p, err := ask("password for the new secret key: ")
	if err != nil {
		return "", err
	}
	again, err := ask("the same again: ")
	if err != nil {
		return "", err
	}
	if p != again || p == "" {
		return "", usageErr("the passwords differ or are empty; nothing written")
	}
	return p, nil
}

func newPublishCommand(g *globals) *cobra.Command {
	kf := &keyFlags{}
	var store string
	var noCheck bool
	cmd := &cobra.Command{
		Use:   "publish dist/NAME-X.Y.Z --store DIR|s3://B/P",
		Short: "Add a baked release to a store's signed catalog (immutable; identical re-publish is a no-op)",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if store == "" {
				return usageErr("--store is required")
			}
			kr, err := kf.keyring()
			if err != nil {
				return err
			}
			signer, err := kf.signer(kr)
			if err != nil {
				return err
			}
			st, err := openWriter(cmd.Context(), store, kr, false)
			if err != nil {
				return err
			}
			sec, err := checkRelease(cmd.Context(), g, store, kr, args[0], !noCheck)
			if err != nil {
				return err
			}
			rel, added, err := st.Publish(cmd.Context(), args[0], signer, catalog.WithFixes(sec.Fixes))
			if err != nil {
				return err
			}
			// the supported releases of higher lines that lack what this
			// one fixed: each needs a security release of its own
			found, err := sec.ForwardPorts(cmd.Context(), rel)
			if err != nil {
				return err
			}
			w := cmd.OutOrStdout()
			if g.json {
				w = g.progress()
			}
			for _, f := range found {
				fmt.Fprintln(w, f)
			}
			if s3, ok := st.(*catalog.S3Store); ok {
				reportRetries(cmd, "catalog", s3.Retries.Load())
			}
			if g.json {
				return printJSON(cmd.OutOrStdout(), rel)
			}
			if !added {
				fmt.Fprintf(cmd.OutOrStdout(), "%s %s is in %s already, the same content (manifest %s): nothing to do\n", sec.Manifest.Family, rel.Version, store, rel.ManifestDigest)
				return nil
			}
			fmt.Fprintf(cmd.OutOrStdout(), "%s %s published into %s (manifest %s; catalog %s)\n", sec.Manifest.Family, rel.Version, store, rel.ManifestDigest, st.Path())
			return nil
		},
	}
	kf.register(cmd, true)
	cmd.Flags().StringVar(&store, "store", "", "store: a directory or s3://BUCKET/PREFIX")
	cmd.Flags().BoolVar(&noCheck, "no-release-check", false, "skip the check of the release number against the release before it in the store")
	return cmd
}

// checkRelease reads the release in dir and the catalog of store, and
// checks the one against the other when check is set (release.CheckCandidate).
func checkRelease(ctx context.Context, g *globals, store string, kr *signing.Keyring, dir string, check bool) (*release.Candidate, error) {
	cand, err := manifest.Read(filepath.Join(dir, manifest.FileName))
	if err != nil {
		return nil, err
	}
	o, err := openCatalog(ctx, store, kr)
	if errors.Is(err, failure.ErrNotFound) {
		o, err = nil, nil // the store's first release
	}
	if err != nil {
		return nil, err
	}
	c, err := release.CheckCandidate(ctx, o, cand, check)
	if err == nil && c.Follows != "" {
		fmt.Fprintf(g.progress(), "%s follows %s in %s\n", cand.Release, c.Follows, store)
	}
	return c, err
}

func newCatalogCommand(g *globals) *cobra.Command {
	cmd := &cobra.Command{Use: "catalog", Short: "List releases and manage their lifecycle"}
	var store, family string
	kf := &keyFlags{}
	list := &cobra.Command{
		Use:   "list --store DIR|URL|s3://B/P [--family F]",
		Short: "List releases with their state, reason, replacement and end of life (the catalog's signature is checked)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if store == "" {
				return usageErr("--store is required: a store directory, its URL, or the URL of its catalog/catalog.toml")
			}
			kr, err := kf.keyring()
			if err != nil {
				return err
			}
			c, err := openCatalog(cmd.Context(), store, kr)
			if err != nil {
				return err
			}
			if c.Notice != "" {
				fmt.Fprintln(g.progress(), c.Notice)
			}
			var fams []catalog.Family
			for _, f := range c.Families {
				if family == "" || f.Name == family {
					fams = append(fams, f)
				}
			}
			if g.json {
				if fams == nil {
					fams = []catalog.Family{}
				}
				return printJSON(cmd.OutOrStdout(), fams)
			}
			tw := tabwriter.NewWriter(cmd.OutOrStdout(), 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "FAMILY\tVERSION\tDATE\tSECURITY\tSTATE\tREPLACEMENT\tEND OF LIFE\tARCHES\tREASON")
			for _, f := range fams {
				for _, r := range f.Releases {
					var arches []string
					for _, im := range r.Images {
						arches = append(arches, im.Arch)
					}
					state := r.State
					if r.State != catalog.Active && !r.StateDate.IsZero() {
						state += " " + r.StateDate.Format("2006-01-02")
					}
					eol := "-"
					if s, ok := f.SupportOf(r.SemVer().Major()); ok && !s.EOL.IsZero() {
						eol = s.EOL.Format("2006-01-02")
					}
					fmt.Fprintf(tw, "%s\t%s\t%s\t%v\t%s\t%s\t%s\t%s\t%s\n", f.Name, r.Version, r.Date.Format("2006-01-02"), r.Security, state,
						orDash(r.Replacement), eol, strings.Join(arches, ","), orDash(r.Reason))
				}
			}
			return tw.Flush()
		},
	}
	list.Flags().StringVar(&store, "store", "", "store: a directory, s3://BUCKET/PREFIX, or an HTTP(S) URL")
	list.Flags().StringVar(&family, "family", "", "only this family")
	kf.register(list, false)
	cmd.AddCommand(list)
	for verb, state := range map[string]string{"deprecate": catalog.Deprecated, "obsolete": catalog.Obsolete, "revoke": catalog.Revoked} {
		cmd.AddCommand(newStateCommand(g, verb, state))
	}
	cmd.AddCommand(newEOLCommand(g))
	cmd.AddCommand(newRefreshCommand(g))
	cmd.AddCommand(newAuditCommand(g))
	return cmd
}

func newRefreshCommand(g *globals) *cobra.Command {
	kf := &keyFlags{}
	var store, expires string
	var notice int
	cmd := &cobra.Command{
		Use:   "refresh --store DIR|s3://B/P [--expires DATE|none] [--notice-days N]",
		Short: "Re-sign the catalog with a new serial and expiry (readers refuse an older serial, and an expired catalog)",
		Long: `Re-sign the catalog with the next serial and, with --expires, a new expiry.

Every write of a catalog raises its serial; readers remember the highest
serial they saw at each catalog location (in the cache directory) and
refuse a lower one, so an older copy put back (a revocation undone) is
caught. An expiry bounds how long a frozen copy can pass: readers warn
within --notice-days before it and refuse the catalog after. Run refresh
on a schedule shorter than the expiry window (a CI cron job, say).`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			var until time.Time
			clear := expires == "none"
			if expires != "" && !clear {
				var err error
				if until, err = parseDate(expires); err != nil {
					return err
				}
			}
			if notice < 0 {
				return usageErr("--notice-days %d is negative", notice)
			}
			c, err := kf.updateCatalog(cmd.Context(), store, g.progress(), func(c *catalog.Catalog) error {
				return c.Refresh(until, notice, clear, time.Now())
			})
			if err != nil {
				return err
			}
			exp := "never"
			if !c.Expires.IsZero() {
				exp = c.Expires.Format(time.RFC3339)
			}
			fmt.Fprintf(cmd.OutOrStdout(), "catalog %s: serial %d, expires %s\n", store, c.Serial, exp)
			return nil
		},
	}
	kf.register(cmd, true)
	cmd.Flags().StringVar(&store, "store", "", "store: a directory or s3://BUCKET/PREFIX")
	cmd.Flags().StringVar(&expires, "expires", "", "when readers stop trusting the catalog: YYYY-MM-DD or RFC 3339, or none (default: keep the current expiry)")
	cmd.Flags().IntVar(&notice, "notice-days", catalog.DefaultExpiryNoticeDays, "warn readers this many days before the expiry")
	return cmd
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

func parseDate(s string) (time.Time, error) {
	if s == "" {
		return time.Now().UTC().Truncate(time.Second), nil
	}
	for _, layout := range []string{"2006-01-02", time.RFC3339} {
		if t, err := time.Parse(layout, s); err == nil {
			return t.UTC(), nil
		}
	}
	return time.Time{}, usageErr("date %q: want YYYY-MM-DD or RFC 3339", s)
}

func newStateCommand(g *globals, verb, state string) *cobra.Command {
	kf := &keyFlags{}
	var store, reason, replacement, at string
	cmd := &cobra.Command{
		Use:   verb + " FAMILY X.Y.Z --store DIR|s3://B/P --reason TEXT [--replacement X.Y.Z] [--at DATE]",
		Short: "Mark a release " + state,
		Args:  cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			when, err := parseDate(at)
			if err != nil {
				return err
			}
			_, err = kf.updateCatalog(cmd.Context(), store, g.progress(), func(c *catalog.Catalog) error {
				return c.SetState(args[0], args[1], state, reason, replacement, when)
			})
			if err == nil {
				fmt.Fprintf(g.progress(), "%s %s is %s\n", args[0], args[1], state)
			}
			return err
		},
	}
	kf.register(cmd, true)
	cmd.Flags().StringVar(&store, "store", "", "store: a directory or s3://BUCKET/PREFIX")
	cmd.Flags().StringVar(&reason, "reason", "", "why (shown to users)")
	cmd.Flags().StringVar(&replacement, "replacement", "", "the release to move to")
	cmd.Flags().StringVar(&at, "at", "", "when it takes effect (default now)")
	return cmd
}

func newEOLCommand(g *globals) *cobra.Command {
	kf := &keyFlags{}
	var store, date string
	var notice int
	cmd := &cobra.Command{
		Use:   "eol FAMILY MAJOR --store DIR|s3://B/P --date DATE [--notice-days N]",
		Short: "Set the end of life of a major",
		Args:  cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			var major uint64
			if _, err := fmt.Sscanf(args[1], "%d", &major); err != nil {
				return usageErr("MAJOR %q is not a number", args[1])
			}
			if date == "" {
				return usageErr("--date is required")
			}
			when, err := parseDate(date)
			if err != nil {
				return err
			}
			c, err := kf.updateCatalog(cmd.Context(), store, g.progress(), func(c *catalog.Catalog) error {
				return c.SetEOL(args[0], major, when, notice)
			})
			if err != nil {
				return err
			}
			fmt.Fprintf(g.progress(), "major %d of %s reaches end of life on %s (users warned from %d days before)\n", major, args[0], when.Format("2006-01-02"), notice)
			// the only supported major: its users have nowhere to go
			if f := c.Family(args[0], false); f != nil && !f.SupportedAbove(major, when) {
				fmt.Fprintf(g.progress(), "warning: no major of %s above %d has an active release supported past %s: its users will have no release to move to; publish one before then\n", args[0], major, when.Format("2006-01-02"))
			}
			return nil
		},
	}
	kf.register(cmd, true)
	cmd.Flags().StringVar(&store, "store", "", "store: a directory or s3://BUCKET/PREFIX")
	cmd.Flags().StringVar(&date, "date", "", "end-of-life date YYYY-MM-DD")
	cmd.Flags().IntVar(&notice, "notice-days", 90, "warn this many days before")
	return cmd
}
