package main

import (
	"context"
	"fmt"
	"io"
	"path/filepath"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/imagebake/imagebake/manifests/catalog"
	"github.com/imagebake/imagebake/manifests/signing"
)

// keyFlags name the signing key and the trusted public keys:
// --key > IMAGEBAKE_KEY, --trusted-key > IMAGEBAKE_TRUSTED_KEYS (comma-separated);
// the password of an encrypted key comes from IMAGEBAKE_KEY_PASSWORD.
type keyFlags struct {
	key     setting
	trusted []string
	// loaded is the signing key decrypted for this command's run (from the
	// file loadedFrom): dropped with the command, never kept for the
	// process
	loaded     *signing.Signer
	loadedFrom string
}

func (f *keyFlags) register(cmd *cobra.Command, signing bool) {
	if signing {
		cmd.Flags().Var(&f.key, "key", "minisign private key to sign with (default $IMAGEBAKE_KEY)")
	}
	cmd.Flags().StringArrayVar(&f.trusted, "trusted-key", nil, "trusted minisign public key; repeatable (default $IMAGEBAKE_TRUSTED_KEYS)")
}

func (f *keyFlags) keyring() (*signing.Keyring, error) {
	return signing.LoadKeyring(listSetting(f.trusted, envTrusted)...)
}

// signer loads the signing key; its own public key is trusted too. A key
// is decrypted once per command run (scrypt, as minisign's: seconds and
// about 1 GiB for each decryption), however many steps sign; the command
// holds it, and it goes with the command.
func (f *keyFlags) signer(kr *signing.Keyring) (*signing.Signer, error) {
	k := stringSetting(f.key, envKey)
	if k == "" {
		return nil, usageErr("no signing key: give --key or set IMAGEBAKE_KEY (make one with `imagebake key generate`)")
	}
	if f.loaded == nil || f.loadedFrom != k {
		s, err := signing.LoadSigner(k, envSetting(envKeyPass))
		if err != nil {
			return nil, err
		}
		f.loaded, f.loadedFrom = s, k
	}
	kr.Add(f.loaded.Public(), k)
	return f.loaded, nil
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
// of its catalog.toml), its signature and serial checked against those
// the cache (--cache, else the default) remembers.
func openCatalog(ctx context.Context, store string, kr *signing.Keyring, cache string) (*catalog.Opened, error) {
	guard, err := catalogGuard(cache, time.Time{})
	if err != nil {
		return nil, err
	}
	return catalog.Open(ctx, store, kr, nil, guard)
}

// readCatalog opens the catalog of store with the trusted keys, and says
// on the progress stream when it expires soon.
func (f *keyFlags) readCatalog(ctx context.Context, g *globals, store string) (*catalog.Opened, error) {
	kr, err := f.keyring()
	if err != nil {
		return nil, err
	}
	c, err := openCatalog(ctx, store, kr, "")
	if err != nil {
		return nil, err
	}
	if c.Notice != "" {
		fmt.Fprintln(g.progress(), c.Notice)
	}
	return c, nil
}

// openWriter opens the store at dest for writing, its serials checked.
func openWriter(ctx context.Context, dest string, kr *signing.Keyring, mustExist bool, cache string) (catalog.Writer, error) {
	guard, err := catalogGuard(cache, time.Time{})
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
	st, err := openWriter(ctx, store, kr, true, "")
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
	publishPage(ctx, w, st, store, kr)
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
			c, err := kf.readCatalog(cmd.Context(), g, store)
			if err != nil {
				return err
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
			tw := newTable(cmd.OutOrStdout())
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
	cmd.AddCommand(newPageCommand(g))
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
