package agents

import (
	"bytes"
	"debug/elf"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/imagebake/imagebake/internal/failure"
)

// ErrWrongMachine marks agent binaries that cannot run on the image's arch.
var ErrWrongMachine = fmt.Errorf("agent binaries for another machine: %w", failure.ErrVerify)

// machines maps Go arch names, as images use them, to ELF machines.
var machines = map[string]elf.Machine{
	"amd64": elf.EM_X86_64, "arm64": elf.EM_AARCH64, "386": elf.EM_386, "arm": elf.EM_ARM,
	"ppc64le": elf.EM_PPC64, "ppc64": elf.EM_PPC64, "s390x": elf.EM_S390, "riscv64": elf.EM_RISCV,
	"mips64le": elf.EM_MIPS, "loong64": elf.EM_LOONGARCH,
}

// CheckMachine checks the unpacked agent binaries in dir against arch:
// bin/NAME must be an ELF executable for arch (not a script), and every
// other ELF file in the tree must be built for arch too. Every problem is
// reported, each naming the file.
func CheckMachine(dir, name, arch string) error {
	want, known := machines[arch]
	if !known {
		return nil // an arch imagebake cannot map: nothing to compare with
	}
	main := filepath.Join(dir, "bin", name)
	var problems []string
	if m, isELF, err := machineOf(main); err != nil {
		problems = append(problems, fmt.Sprintf("bin/%s: %v (the agent binaries must hold bin/%s)", name, err, name))
	} else if !isELF {
		problems = append(problems, fmt.Sprintf("bin/%s is not an ELF executable (a script?); want a %s binary", name, arch))
	} else if m != want {
		problems = append(problems, fmt.Sprintf("bin/%s is built for %s, the image is %s (%s)", name, m, arch, want))
	}
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || !d.Type().IsRegular() || p == main {
			return err
		}
		m, isELF, err := machineOf(p)
		if err != nil || !isELF || m == want {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		problems = append(problems, fmt.Sprintf("%s is built for %s, the image is %s (%s)", filepath.ToSlash(rel), m, arch, want))
		return nil
	})
	if err != nil {
		return err
	}
	if len(problems) > 0 {
		return fmt.Errorf("%w:\n  %s", ErrWrongMachine, strings.Join(problems, "\n  "))
	}
	return nil
}

// machineOf reads the ELF machine of the file at p; isELF is false for
// any other file.
func machineOf(p string) (elf.Machine, bool, error) {
	f, err := os.Open(p)
	if err != nil {
		return 0, false, err
	}
	defer f.Close()
	magic := make([]byte, 4)
	if _, err := io.ReadFull(f, magic); err != nil || !bytes.Equal(magic, []byte(elf.ELFMAG)) {
		return 0, false, nil
	}
	ef, err := elf.NewFile(f)
	if err != nil {
		var fe *elf.FormatError
		if errors.As(err, &fe) {
			return 0, false, fmt.Errorf("a damaged ELF file: %v", err)
		}
		return 0, false, err
	}
	return ef.Machine, true, nil
}
