package dicomio

import (
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
	"testing"
	"time"
)

// Big CR files (2140x1760 and 1760x1760, 10-12 bit) in every encoding.
var benchFiles = []string{
	"gen__RG3__dcmcrle_5.dcm",
	"gen__RG3__dcmcjpeg_baseline_50.dcm",
	"gen__RG3__dcmcjpeg_extended_51.dcm",
	"gen__RG3__dcmcjpeg_lossless_57.dcm",
	"gen__RG3__dcmcjpeg_sv1_70.dcm",
	"gen__RG3__dcmcjpls_lossless_80.dcm",
	"gen__RG3__dcmcjpls_near2_81.dcm",
	"gen__RG3__gdcmconv_j2k_90.dcm",
	"gen__RG3__gdcmconv_j2k_r10_91.dcm",
	"gen__RG2__dcmcjpeg_lossless_57.dcm",
	"gen__RG2__gdcmconv_j2k_r10_91.dcm",
}

// BenchmarkDecodeRender times read+parse+decode+render of frame 0, in
// process. BenchmarkExternal runs dcmtk's dcmj2pnm / dcml2pnm (decode+render,
// PGM to /dev/null) and GDCM's gdcmconv --raw on the same files in the same
// command, so ratios compare like with like on the same machine (theirs
// include process start-up; see BenchmarkExternal/startup).
func BenchmarkDecodeRender(b *testing.B) {
	dir := needShared(b, "dicom/files")
	for _, name := range benchFiles {
		path := filepath.Join(dir, name)
		b.Run(shortName(name), func(b *testing.B) {
			for b.Loop() {
				f, err := ParseFile(path)
				if err != nil {
					b.Fatal(err)
				}
				if _, err := f.Render8(0); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

func BenchmarkExternal(b *testing.B) {
	dir := needShared(b, "dicom/files")
	tools := map[string]func(in, tmp string) *exec.Cmd{
		"dcmj2pnm": func(in, tmp string) *exec.Cmd {
			bin := "dcmj2pnm"
			if strings.Contains(in, "jpls") {
				bin = "dcml2pnm" // dcmtk's JPEG-LS build of the same tool
			}
			return exec.Command(bin, "-q", "+Wi", "1", in, os.DevNull)
		},
		"gdcmconv-raw": func(in, tmp string) *exec.Cmd {
			return exec.Command("gdcmconv", "--raw", in, filepath.Join(tmp, "out.dcm"))
		},
	}
	names := make([]string, 0, len(tools))
	for k := range tools {
		names = append(names, k)
	}
	sort.Strings(names)
	for _, tool := range names {
		if _, err := exec.LookPath(strings.TrimSuffix(tool, "-raw")); err != nil {
			continue
		}
		b.Run(tool+"/startup", func(b *testing.B) {
			for b.Loop() {
				exec.Command(strings.TrimSuffix(tool, "-raw"), "--version").Run()
			}
		})
		for _, name := range benchFiles {
			path := filepath.Join(dir, name)
			if tool == "dcmj2pnm" && strings.Contains(name, "j2k") {
				continue // dcmtk 3.6.7 has no JPEG 2000 codec
			}
			tmp := b.TempDir()
			b.Run(tool+"/"+shortName(name), func(b *testing.B) {
				for b.Loop() {
					if out, err := tools[tool](path, tmp).CombinedOutput(); err != nil {
						b.Fatalf("%v: %s", err, out)
					}
				}
			})
		}
	}
}

func shortName(name string) string {
	return strings.TrimSuffix(strings.TrimPrefix(name, "gen__"), ".dcm")
}

// BenchmarkDecodeXray times read+parse+decode of frame 0 (stored values, no
// rendering) of the hospital-like corpus, one sub-benchmark per transfer
// syntax, reported as ms/file: the figure dicomio/scripts/decode_compare.py
// sets against GDCM's in-process decode of the same files.
func BenchmarkDecodeXray(b *testing.B) {
	dir := needShared(b, "xray-dicom/files")
	paths, _ := filepath.Glob(filepath.Join(dir, "*.dcm"))
	if len(paths) == 0 {
		b.Fatalf("no files in %s", dir)
	}
	byTS := map[string][]string{}
	for _, p := range paths {
		f, err := ParseFile(p)
		if err != nil {
			b.Fatal(err)
		}
		byTS[f.TransferSyntaxUID] = append(byTS[f.TransferSyntaxUID], p)
	}
	uids := make([]string, 0, len(byTS))
	for uid := range byTS {
		uids = append(uids, uid)
	}
	sort.Strings(uids)
	for _, uid := range uids {
		group := byTS[uid]
		b.Run(uid, func(b *testing.B) {
			cpu0 := cpuTime()
			for b.Loop() {
				for _, p := range group {
					f, err := ParseFile(p)
					if err != nil {
						b.Fatal(err)
					}
					if _, err := f.DecodeFrame(0); err != nil {
						b.Fatal(err)
					}
				}
			}
			files := float64(b.N * len(group))
			b.ReportMetric(float64(b.Elapsed().Microseconds())/1000/files, "ms/file")
			b.ReportMetric(float64((cpuTime()-cpu0).Microseconds())/1000/files, "cpu-ms/file")
		})
	}
}

// cpuTime is the process's user+system CPU time, which other processes
// on a shared machine disturb less than wall time.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
