// Command benchmark measures the embedded engine against a baseline run beside it, and prints
// ratios: a fan-out of independent orders against the same commands run by xargs -P, and a chain
// of dependent orders against the same commands run one after another. scripts/bench builds and
// runs it.
package main

import (
	"bytes"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"time"
)

func main() {
	binary := flag.String("binary", "iac-ci", "the iac-ci binary to measure")
	workers := flag.Int("workers", 4, "orders at once (iac-ci --workers) and xargs -P")
	fanout := flag.Int("fanout", 1000, "independent orders in the fan-out")
	chain := flag.Int("chain", 200, "dependent orders in the chain")
	rounds := flag.Int("rounds", 3, "rounds of the embedded measurements (baseline, then iac-ci, each round)")
	aws := flag.Bool("aws", false, "also count AWS API calls per order through serve --backend aws against moto_server")
	awsOnly := flag.Bool("aws-only", false, "count AWS API calls only (implies --aws)")
	awsSizes := flag.String("aws-sizes", "10,100,1000", "fan-out sizes measured by --aws, comma-separated")
	flag.Parse()
	sizes, err := parseSizes(*awsSizes)
	if err != nil {
		fmt.Fprintln(os.Stderr, "benchmark: --aws-sizes:", err)
		os.Exit(2)
	}
	if *awsOnly {
		err = runAWSOnly(*binary, sizes)
	} else {
		err = run(*binary, *workers, *fanout, *chain, max(*rounds, 1), *aws, sizes)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "benchmark:", err)
		os.Exit(1)
	}
}

// parseSizes reads a comma-separated list of positive order counts.
func parseSizes(s string) ([]int, error) {
	var sizes []int
	for _, f := range strings.Split(s, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil || n < 1 {
			return nil, fmt.Errorf("%q is not a positive number of orders", f)
		}
		sizes = append(sizes, n)
	}
	return sizes, nil
}

// runAWSOnly counts AWS calls without the embedded measurements.
func runAWSOnly(binary string, sizes []int) error {
	dir, err := os.MkdirTemp("", "iac-ci-bench-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	fmt.Printf("machine: %s/%s, %d CPUs, %s\n", runtime.GOOS, runtime.GOARCH, runtime.NumCPU(), cpuModel())
	return awsCalls(binary, dir, sizes)
}

func run(binary string, workers, fanout, chain, rounds int, aws bool, sizes []int) error {
	dir, err := os.MkdirTemp("", "iac-ci-bench-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	fmt.Printf("machine: %s/%s, %d CPUs, %s\n", runtime.GOOS, runtime.GOARCH, runtime.NumCPU(), cpuModel())
	fmt.Printf("workers: %d; %d rounds, each running the baseline and then iac-ci: medians shown,\n", workers, rounds)
	fmt.Printf("ratios are the median of each round's own ratio (the machine's speed drifts between rounds)\n\n")

	fanJob := filepath.Join(dir, "fanout.json")
	chainJob := filepath.Join(dir, "chain.json")
	oneJob := filepath.Join(dir, "one.json")
	for path, spec := range map[string]struct {
		n       int
		chained bool
	}{fanJob: {fanout, false}, chainJob: {chain, true}, oneJob: {1, true}} {
		if err := writeJob(path, spec.n, spec.chained); err != nil {
			return err
		}
	}
	var (
		bases, engs, fanRatios             []float64
		seqs, chains, chainRatios, steadys []float64
		perHops, ones                      []float64
		baseCPUs, engCPUs                  []float64 // CPU time per order, ms
		baseBusy, engBusy                  []float64 // CPUs busy on average
		peak                               int64
	)
	for range rounds {
		baseM, _, err := measuredOutput("sh", "-c", fmt.Sprintf("seq %d | xargs -P %d -I{} sh -c true", fanout, workers))
		if err != nil {
			return fmt.Errorf("xargs baseline: %w", err)
		}
		engM, _, err := measuredOutput(binary, "run", "--json", "--workers", fmt.Sprint(workers), fanJob)
		if err != nil {
			return fmt.Errorf("fan-out: %w", err)
		}
		base, eng := baseM.wall, engM.wall
		bases, engs = append(bases, base.Seconds()), append(engs, eng.Seconds())
		fanRatios = append(fanRatios, eng.Seconds()/base.Seconds())
		peak = max(peak, engM.rss)
		baseCPUs = append(baseCPUs, float64(baseM.cpu.Microseconds())/1000/float64(fanout))
		engCPUs = append(engCPUs, float64(engM.cpu.Microseconds())/1000/float64(fanout))
		baseBusy = append(baseBusy, baseM.cpu.Seconds()/base.Seconds())
		engBusy = append(engBusy, engM.cpu.Seconds()/eng.Seconds())

		seq, _, err := timed("sh", "-c", fmt.Sprintf("i=0; while [ $i -lt %d ]; do sh -c true; i=$((i+1)); done", chain))
		if err != nil {
			return fmt.Errorf("sequential baseline: %w", err)
		}
		one, _, err := timed(binary, "run", "--json", oneJob)
		if err != nil {
			return fmt.Errorf("one order: %w", err)
		}
		ch, _, out, err := timedOutput(binary, "run", "--json", "--workers", fmt.Sprint(workers), chainJob)
		if err != nil {
			return fmt.Errorf("chain: %w", err)
		}
		steady, err := medianHop(out)
		if err != nil {
			return fmt.Errorf("chain: %w", err)
		}
		steady -= seq / time.Duration(chain)
		seqs, chains, ones = append(seqs, seq.Seconds()), append(chains, ch.Seconds()), append(ones, one.Seconds())
		chainRatios = append(chainRatios, ch.Seconds()/seq.Seconds())
		steadys = append(steadys, float64(steady.Microseconds())/1000)
		perHops = append(perHops, float64(((ch-one-seq)/time.Duration(chain-1)).Microseconds())/1000)
	}

	fmt.Printf("fan-out: %d independent orders running `true`\n", fanout)
	fmt.Printf("  xargs -P %d          %8.3f s\n", workers, median(bases))
	fmt.Printf("  iac-ci run           %8.3f s\n", median(engs))
	fmt.Printf("  ratio                %8.2fx   (target: within 2x; rounds: %s)\n", median(fanRatios), list(fanRatios, "%.2f"))
	fmt.Printf("  peak memory (RSS)    %8.1f MB (target: under 150 MB; the highest of the rounds)\n", float64(peak)/1024)
	fmt.Printf("  CPU per order        %8.2f ms  xargs, %.2f ms iac-ci (each with its commands; CPUs busy on average: %.2f and %.2f)\n\n",
		median(baseCPUs), median(engCPUs), median(baseBusy), median(engBusy))

	fmt.Printf("chain: %d dependent orders running `true`\n", chain)
	fmt.Printf("  sequential sh -c     %8.3f s\n", median(seqs))
	fmt.Printf("  iac-ci run           %8.3f s   (one-order run, start-up included: %.3f s)\n", median(chains), median(ones))
	fmt.Printf("  ratio                %8.2fx\n", median(chainRatios))
	fmt.Printf("  overhead per hop     %8.2f ms  (median start-to-start of consecutive orders, less one sh -c; target: under 3 ms; rounds: %s)\n",
		median(steadys), list(steadys, "%.2f"))
	fmt.Printf("  whole-run overhead   %8.2f ms  per hop (chain - one-order run - sequential, over %d hops: intake of every order included)\n",
		median(perHops), chain-1)
	if aws {
		return awsCalls(binary, dir, sizes)
	}
	return nil
}

// median is the middle value of xs (the mean of the middle two for an even count).
func median(xs []float64) float64 {
	s := slices.Clone(xs)
	slices.Sort(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

// list formats xs with format, comma-separated.
func list(xs []float64, format string) string {
	parts := make([]string, len(xs))
	for i, x := range xs {
		parts[i] = fmt.Sprintf(format, x)
	}
	return strings.Join(parts, ", ")
}

// writeJob writes a job of n orders running `true`, each depending on the one before when chained.
func writeJob(path string, n int, chained bool) error {
	type order struct {
		Name   string   `json:"order_name"`
		Cmds   []string `json:"cmds"`
		Target string   `json:"execution_target"`
		Time   int      `json:"timeout"`
		Deps   []string `json:"dependencies,omitempty"`
	}
	job := struct {
		Username   string  `json:"username"`
		JobTimeout int     `json:"job_timeout"`
		Orders     []order `json:"orders"`
	}{Username: "bench", JobTimeout: 3600}
	for i := range n {
		o := order{Name: fmt.Sprintf("o%04d", i+1), Cmds: []string{"true"}, Target: "lambda", Time: 60}
		if chained && i > 0 {
			o.Deps = []string{fmt.Sprintf("o%04d", i)}
		}
		job.Orders = append(job.Orders, o)
	}
	data, err := json.Marshal(job)
	if err != nil {
		return err
	}
	return os.WriteFile(path, data, 0o600)
}

// timed runs a command and returns its wall time and its peak resident memory in KiB.
func timed(name string, args ...string) (time.Duration, int64, error) {
	m, _, err := measuredOutput(name, args...)
	return m.wall, m.rss, err
}

// medianHop reads `iac-ci run --json` output of a chain and returns the median time from one
// order's start to the next one's.
func medianHop(out []byte) (time.Duration, error) {
	var run struct {
		Orders []struct {
			StartedAt time.Time `json:"started_at"`
		} `json:"orders"`
	}
	if err := json.Unmarshal(out, &run); err != nil {
		return 0, fmt.Errorf("read run JSON: %w", err)
	}
	var hops []time.Duration
	for i := 1; i < len(run.Orders); i++ {
		hops = append(hops, run.Orders[i].StartedAt.Sub(run.Orders[i-1].StartedAt))
	}
	if len(hops) == 0 {
		return 0, fmt.Errorf("no hops in the chain's output")
	}
	sort.Slice(hops, func(a, b int) bool { return hops[a] < hops[b] })
	return hops[len(hops)/2], nil
}

// timedOutput is timed, also returning the command's standard output.
// measure is what one run of a command took: its wall time, its peak memory (KiB), and the CPU
// time it and the processes it waited for used.
type measure struct {
	wall time.Duration
	rss  int64
	cpu  time.Duration
}

func timedOutput(name string, args ...string) (time.Duration, int64, []byte, error) {
	m, out, err := measuredOutput(name, args...)
	return m.wall, m.rss, out, err
}

func measuredOutput(name string, args ...string) (measure, []byte, error) {
	cmd := exec.Command(name, args...)
	var errb bytes.Buffer
	cmd.Stderr = &errb
	start := time.Now()
	out, err := cmd.Output()
	m := measure{wall: time.Since(start)}
	if err != nil {
		return m, nil, fmt.Errorf("%s %s: %v\n%s%s", name, strings.Join(args, " "), err, out, errb.String())
	}
	// The rusage wait4 reports for a child counts the children it waited for too: xargs's and
	// iac-ci's commands are in their CPU time.
	m.cpu = cmd.ProcessState.UserTime() + cmd.ProcessState.SystemTime()
	if ru, ok := cmd.ProcessState.SysUsage().(*syscall.Rusage); ok {
		m.rss = ru.Maxrss // KiB on Linux
	}
	return m, out, nil
}

func cpuModel() string {
	data, err := os.ReadFile("/proc/cpuinfo")
	if err != nil {
		return "unknown CPU"
	}
	for _, line := range strings.Split(string(data), "\n") {
		if k, v, ok := strings.Cut(line, ":"); ok && strings.TrimSpace(k) == "model name" {
			return strings.TrimSpace(v)
		}
	}
	return "unknown CPU"
}
