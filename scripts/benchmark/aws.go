package main

import (
	"archive/zip"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"gopkg.in/yaml.v3"

	"github.com/iac-ci/iac-ci/awsbackend"
)

// Public us-east-1 list prices used for the estimate, per request (or unit). Sources, read in
// 2026: aws.amazon.com/sqs/pricing, /dynamodb/pricing/on-demand, /s3/pricing,
// /systems-manager/pricing, /kms/pricing, /secrets-manager/pricing. DynamoDB's on-demand prices
// are those since the cut of 1 November 2024 ($1.25 and $0.25 per million before it); free
// tiers are left out.
const (
	priceSQS           = 0.40 / 1e6   // SQS standard queue, per request (64 KB chunk)
	priceDynamoWrite   = 0.625 / 1e6  // DynamoDB on-demand, per write request unit
	priceDynamoRead    = 0.125 / 1e6  // DynamoDB on-demand, per read request unit
	priceS3Put         = 0.005 / 1e3  // S3 Standard PUT, COPY, POST, LIST
	priceS3Get         = 0.0004 / 1e3 // S3 Standard GET, SELECT and all other requests but DELETE
	priceSSMStandard   = 0.0          // Parameter Store standard parameters, standard throughput
	priceKMS           = 0.03 / 1e4   // KMS request (SecureString encrypt and decrypt)
	priceSecretsManage = 0.05 / 1e4   // Secrets Manager API call
)

// awsCalls counts the AWS calls of orders run through `serve --backend aws` against moto_server:
// the diamond example (every order on lambda: moto runs no CodeBuild build) and fan-outs of
// lambda orders (10, 100 and 1000 unless --aws-sizes says otherwise). Calls are counted by the server's own SDK clients, presigned
// result and log transfers included; idle polls (receives that return nothing) are counted
// apart, since they follow time, not orders. The sweeper is set to run once an hour so that its
// calls (five queries a pass, every minute in a deployment) stay out of the per-order figures.
func awsCalls(binary, dir string, sizes []int) error {
	fmt.Printf("\naws: AWS calls per order through `iac-ci serve --backend aws --aws-serialize` against moto_server\n")
	endpoint, stop, err := startMoto(dir)
	if err != nil {
		return err
	}
	defer stop()
	env := append(os.Environ(), "AWS_ENDPOINT_URL="+endpoint, "AWS_REGION=us-east-1", "AWS_ACCESS_KEY_ID=bench",
		"AWS_SECRET_ACCESS_KEY=bench", "AWS_SESSION_TOKEN=", "AWS_PROFILE=", "AWS_EC2_METADATA_DISABLED=true",
		"IAC_CI_PREFIX=bench", "IAC_CI_API_TOKEN=") // no token: --insecure-skip-signature leaves /debug/aws-calls open
	setup := exec.Command(binary, "aws-setup")
	setup.Env = env
	if out, err := setup.CombinedOutput(); err != nil {
		return fmt.Errorf("aws-setup: %v\n%s", err, out)
	}
	addr, err := freeAddr()
	if err != nil {
		return err
	}
	serveLog, err := os.Create(filepath.Join(dir, "serve-aws.log"))
	if err != nil {
		return err
	}
	defer serveLog.Close()
	serve := exec.Command(binary, "serve", "--backend", "aws", "--aws-serialize", "--debug-aws-calls",
		"--insecure-skip-signature", "--sweep-interval", "1h", "--addr", addr, "--data", filepath.Join(dir, "aws-data"))
	serve.Env, serve.Stdout, serve.Stderr = env, io.Discard, serveLog
	serve.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := serve.Start(); err != nil {
		return fmt.Errorf("serve: %w", err)
	}
	defer func() { _ = serve.Process.Signal(syscall.SIGTERM); _, _ = serve.Process.Wait() }()
	base := "http://" + addr
	if err := waitHealthy(base, 30*time.Second); err != nil {
		return fmt.Errorf("serve --backend aws: %w (log: %s)", err, serveLog.Name())
	}
	client := s3.NewFromConfig(aws.Config{Region: "us-east-1", BaseEndpoint: aws.String(endpoint),
		Credentials: credentials.NewStaticCredentialsProvider("bench", "bench", "")}, func(o *s3.Options) { o.UsePathStyle = true })

	diamond, err := lambdaDiamond(client)
	if err != nil {
		return err
	}
	jobs := []struct {
		name   string
		body   []byte
		orders int
		wait   time.Duration
	}{{"diamond (4 orders)", diamond, 4, 2 * time.Minute}}
	for _, n := range sizes {
		jobs = append(jobs, struct {
			name   string
			body   []byte
			orders int
			wait   time.Duration
		}{fmt.Sprintf("fan-out of %d", n), fanOutJob(n), n, time.Duration(n)*2*time.Second + 2*time.Minute})
	}
	var results []jobCalls
	for _, j := range jobs {
		r, err := measureJob(base, client, j.body, j.wait)
		if err != nil {
			return fmt.Errorf("%s: %w (log: %s)", j.name, err, serveLog.Name())
		}
		r.name, r.orders = j.name, j.orders
		results = append(results, r)
		fmt.Printf("  %-20s %4d orders in %6.1f s: %5.1f calls per order, %5.1f with idle polls\n",
			j.name, j.orders, r.took.Seconds(), r.perOrder(false), r.perOrder(true))
	}
	printCallTable(results)
	return nil
}

// jobCalls is what one job cost.
type jobCalls struct {
	name   string
	orders int
	took   time.Duration
	diff   awsbackend.CallReport
}

// perOrder is the calls per order, with or without the receives that found nothing.
func (j jobCalls) perOrder(withIdle bool) float64 {
	n := j.diff.Total
	if !withIdle {
		n -= j.diff.EmptyReceives
	}
	return float64(n) / float64(j.orders)
}

// cost is the estimated cost of one order in dollars, by service, idle polls included.
func (j jobCalls) cost() map[string]float64 {
	per := func(x float64) float64 { return x / float64(j.orders) }
	c := map[string]float64{
		"dynamodb": per(j.diff.DynamoDBWriteUnits*priceDynamoWrite + j.diff.DynamoDBReadUnits*priceDynamoRead),
		"kms":      per(float64(j.diff.KMSRequests) * priceKMS),
	}
	for op, n := range j.diff.Calls {
		service, name, _ := strings.Cut(op, ".")
		switch service {
		case "sqs":
			c["sqs"] += per(float64(n) * priceSQS)
		case "s3":
			switch {
			case strings.HasPrefix(name, "Put") || strings.HasPrefix(name, "List") || strings.HasPrefix(name, "Copy") ||
				strings.HasPrefix(name, "Create") || strings.HasPrefix(name, "Post"):
				c["s3"] += per(float64(n) * priceS3Put)
			case strings.HasPrefix(name, "Delete"):
			default:
				c["s3"] += per(float64(n) * priceS3Get)
			}
		case "ssm":
			c["ssm"] += per(float64(n) * priceSSMStandard)
		case "secretsmanager":
			c["secretsmanager"] += per(float64(n) * priceSecretsManage)
		}
	}
	return c
}

// printCallTable prints calls per order by operation for every job, then the estimated cost.
func printCallTable(results []jobCalls) {
	ops := map[string]bool{}
	for _, r := range results {
		for op := range r.diff.Calls {
			ops[op] = true
		}
	}
	names := make([]string, 0, len(ops))
	for op := range ops {
		names = append(names, op)
	}
	sort.Strings(names)
	fmt.Printf("\n  calls per order by operation\n  %-36s", "operation")
	for _, r := range results {
		fmt.Printf(" %12s", shortName(r.name))
	}
	fmt.Println()
	row := func(label string, value func(jobCalls) float64) {
		fmt.Printf("  %-36s", label)
		for _, r := range results {
			fmt.Printf(" %12.2f", value(r))
		}
		fmt.Println()
	}
	for _, op := range names {
		row(op, func(r jobCalls) float64 { return float64(r.diff.Calls[op]) / float64(r.orders) })
	}
	row("  of which receives that found nothing", func(r jobCalls) float64 { return float64(r.diff.EmptyReceives) / float64(r.orders) })
	row("total, idle polls excluded", func(r jobCalls) float64 { return r.perOrder(false) })
	row("total, idle polls included", func(r jobCalls) float64 { return r.perOrder(true) })
	row("dynamodb write units (estimated)", func(r jobCalls) float64 { return r.diff.DynamoDBWriteUnits / float64(r.orders) })
	row("dynamodb read units (estimated)", func(r jobCalls) float64 { return r.diff.DynamoDBReadUnits / float64(r.orders) })
	row("kms requests (estimated)", func(r jobCalls) float64 { return float64(r.diff.KMSRequests) / float64(r.orders) })
	fmt.Println("  target: at most 12 calls per lambda order, idle polls excluded, flat from 10 to 1000 orders")

	fmt.Printf("\n  estimated AWS cost per million orders, US$ (requests only: no Lambda or CodeBuild compute, storage or transfer)\n  %-36s", "service")
	for _, r := range results {
		fmt.Printf(" %12s", shortName(r.name))
	}
	fmt.Println()
	for _, svc := range []string{"sqs", "dynamodb", "s3", "ssm", "kms", "secretsmanager"} {
		row(svc, func(r jobCalls) float64 { return r.cost()[svc] * 1e6 })
	}
	row("total", func(r jobCalls) float64 {
		sum := 0.0
		for _, v := range r.cost() {
			sum += v
		}
		return sum * 1e6
	})
	fmt.Println("  prices (us-east-1, list): SQS standard $0.40 per million requests; DynamoDB on-demand $0.625 per million")
	fmt.Println("  write request units and $0.125 per million read request units (since 1 Nov 2024; $1.25 and $0.25 before);")
	fmt.Println("  S3 Standard $0.005 per 1,000 PUT/COPY/POST/LIST and $0.0004 per 1,000 GET and other requests;")
	fmt.Println("  Parameter Store standard parameters: API calls free at standard throughput; KMS $0.03 per 10,000 requests;")
	fmt.Println("  Secrets Manager $0.05 per 10,000 API calls. Sources: the services' pricing pages on aws.amazon.com.")
	fmt.Println("  Idle polls are included in the cost; their share falls as the load rises.")
}

func shortName(name string) string {
	if strings.HasPrefix(name, "fan-out of ") {
		return "fan-out " + strings.TrimPrefix(name, "fan-out of ")
	}
	return strings.Fields(name)[0]
}

// measureJob posts a job, waits until its done object is written and the server's calls settle,
// and returns the calls made meanwhile. It watches the done bucket with a client of its own, so
// that waiting costs the server nothing.
func measureJob(base string, client *s3.Client, body []byte, wait time.Duration) (jobCalls, error) {
	before, err := readCalls(base)
	if err != nil {
		return jobCalls{}, err
	}
	start := time.Now()
	resp, err := http.Post(base+"/webhook", "application/yaml", bytes.NewReader(body))
	if err != nil {
		return jobCalls{}, err
	}
	var acc struct {
		RunID string `json:"run_id"`
	}
	data, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusAccepted || json.Unmarshal(data, &acc) != nil || acc.RunID == "" {
		return jobCalls{}, fmt.Errorf("POST /webhook: %s %s", resp.Status, data)
	}
	deadline := start.Add(wait)
	for {
		_, err := client.HeadObject(context.Background(), &s3.HeadObjectInput{Bucket: aws.String("bench-done"),
			Key: aws.String(acc.RunID + "/done")})
		if err == nil {
			break
		}
		if time.Now().After(deadline) {
			return jobCalls{}, fmt.Errorf("run %s did not end within %s", acc.RunID, wait)
		}
		time.Sleep(200 * time.Millisecond)
	}
	took := time.Since(start)
	// After the done object come the last writes of finalization and the batched deletes of the
	// last messages; wait until nothing but idle polls is being counted.
	var after awsbackend.CallReport
	busy := func(r awsbackend.CallReport) int64 { return r.Total - r.EmptyReceives }
	for quiet := 0; quiet < 4; {
		time.Sleep(500 * time.Millisecond)
		r, err := readCalls(base)
		if err != nil {
			return jobCalls{}, err
		}
		if busy(r) == busy(after) {
			quiet++
		} else {
			quiet = 0
		}
		after = r
	}
	d := awsbackend.CallReport{Calls: map[string]int64{}}
	for op, n := range after.Calls {
		if n -= before.Calls[op]; n > 0 {
			d.Calls[op] = n
		}
	}
	d.Total = after.Total - before.Total
	d.EmptyReceives = after.EmptyReceives - before.EmptyReceives
	d.DynamoDBWriteUnits = after.DynamoDBWriteUnits - before.DynamoDBWriteUnits
	d.DynamoDBReadUnits = after.DynamoDBReadUnits - before.DynamoDBReadUnits
	d.KMSRequests = after.KMSRequests - before.KMSRequests
	return jobCalls{took: took, diff: d}, nil
}

func readCalls(base string) (awsbackend.CallReport, error) {
	var r awsbackend.CallReport
	resp, err := http.Get(base + "/debug/aws-calls")
	if err != nil {
		return r, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return r, fmt.Errorf("GET /debug/aws-calls: %s", resp.Status)
	}
	return r, json.NewDecoder(resp.Body).Decode(&r)
}

// fanOutJob is n independent lambda orders running `true`.
func fanOutJob(n int) []byte {
	type order struct {
		Name   string   `json:"order_name"`
		Cmds   []string `json:"cmds"`
		Target string   `json:"execution_target"`
		Time   int      `json:"timeout"`
	}
	job := struct {
		Username   string  `json:"username"`
		JobTimeout int     `json:"job_timeout"`
		Orders     []order `json:"orders"`
	}{Username: "bench", JobTimeout: 3600}
	for i := range n {
		job.Orders = append(job.Orders, order{Name: fmt.Sprintf("o%04d", i+1), Cmds: []string{"true"}, Target: "lambda", Time: 60})
	}
	data, _ := json.Marshal(job)
	return data
}

// lambdaDiamond is examples/diamond.yaml with every order on lambda and its local code moved to
// a zip in S3 (local_path works only embedded).
func lambdaDiamond(client *s3.Client) ([]byte, error) {
	data, err := os.ReadFile(filepath.Join("examples", "diamond.yaml"))
	if err != nil {
		return nil, fmt.Errorf("run the benchmark from the repository's top folder: %w", err)
	}
	var job map[string]any
	if err := yaml.Unmarshal(data, &job); err != nil {
		return nil, err
	}
	ctx := context.Background()
	if _, err := client.CreateBucket(ctx, &s3.CreateBucketInput{Bucket: aws.String("bench-code")}); err != nil {
		var owned interface{ ErrorCode() string }
		if !errors.As(err, &owned) || owned.ErrorCode() != "BucketAlreadyOwnedByYou" {
			return nil, fmt.Errorf("create code bucket: %w", err)
		}
	}
	orders, _ := job["orders"].([]any)
	for _, o := range orders {
		order := o.(map[string]any)
		order["execution_target"] = "lambda"
		dir, ok := order["local_path"].(string)
		if !ok {
			continue
		}
		delete(order, "local_path")
		zipped, err := zipFolder(filepath.Join("examples", dir))
		if err != nil {
			return nil, err
		}
		key := dir + ".zip"
		if _, err := client.PutObject(ctx, &s3.PutObjectInput{Bucket: aws.String("bench-code"), Key: aws.String(key),
			Body: bytes.NewReader(zipped)}); err != nil {
			return nil, fmt.Errorf("upload code: %w", err)
		}
		order["s3_location"] = "s3://bench-code/" + key
	}
	return yaml.Marshal(job)
}

func zipFolder(dir string) ([]byte, error) {
	var buf bytes.Buffer
	zw := zip.NewWriter(&buf)
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, err
	}
	for _, e := range entries {
		data, err := os.ReadFile(filepath.Join(dir, e.Name()))
		if err != nil {
			return nil, err
		}
		w, err := zw.Create(e.Name())
		if err != nil {
			return nil, err
		}
		if _, err := w.Write(data); err != nil {
			return nil, err
		}
	}
	if err := zw.Close(); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// startMoto starts moto_server on a free loopback port and returns its URL and how to stop it.
func startMoto(dir string) (string, func(), error) {
	bin, args := "", []string{}
	if p, err := exec.LookPath("moto_server"); err == nil {
		bin = p
	} else if py, err := exec.LookPath("python3"); err == nil && exec.Command(py, "-c", "import moto.server").Run() == nil {
		bin, args = py, []string{"-m", "moto.server"}
	} else {
		return "", nil, errors.New("--aws needs moto_server: pip install 'moto[server]'")
	}
	addr, err := freeAddr()
	if err != nil {
		return "", nil, err
	}
	host, port, _ := net.SplitHostPort(addr)
	logf, err := os.Create(filepath.Join(dir, "moto.log"))
	if err != nil {
		return "", nil, err
	}
	cmd := exec.Command(bin, append(args, "-H", host, "-p", port)...)
	cmd.Stdout, cmd.Stderr = logf, logf
	// moto writes notification times in local time without a zone; in UTC they read right.
	cmd.Env = append(os.Environ(), "TZ=UTC")
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		logf.Close()
		return "", nil, fmt.Errorf("start %s: %w", bin, err)
	}
	stop := func() { _ = cmd.Process.Kill(); _, _ = cmd.Process.Wait(); logf.Close() }
	url := "http://" + net.JoinHostPort(host, port)
	if err := waitHealthy(url+"/moto-api/", 30*time.Second); err != nil {
		stop()
		return "", nil, fmt.Errorf("moto_server: %w", err)
	}
	return url, stop, nil
}

func freeAddr() (string, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer l.Close()
	return l.Addr().String(), nil
}

// waitHealthy waits until url (or url/healthz for an iac-ci server) answers 200.
func waitHealthy(url string, d time.Duration) error {
	if !strings.Contains(url, "/moto-api/") {
		url += "/healthz"
	}
	deadline := time.Now().Add(d)
	for time.Now().Before(deadline) {
		resp, err := http.Get(url)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
	return fmt.Errorf("%s did not answer within %s", url, d)
}
