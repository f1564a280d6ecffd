// Package assembly puts iac-ci together, once, whatever hosts it. From the ports a backend opens
// (Ports: store, queues, buckets, run keys and secret values, on SQLite and a folder or on AWS) New
// builds everything on top of them: the engine, the producers (accepter, intake, HTTP server),
// the consumers (workers or launchers, orchestrator, dead letters, sweeper) and the route table
// that says which handler consumes which queue (Routes).
//
// It is the only place these are constructed. The hosts are thin layers that pick from it:
//
//   - `iac-ci run` and `iac-ci serve` (embedded, or --backend aws) run Serve: the HTTP server,
//     a Loop per route and the sweeper's ticker, in one process;
//   - each Lambda function (package lambdafn) serves the routes whose Function is its name, as
//     its event source mappings hand it their messages, or the HTTP server, or one sweep;
//   - `iac-ci worker`, inside CodeBuild or on an instance, needs no port at all: it runs one
//     attempt from presigned URLs (consumers.Execute).
//
// A reader who wants to know which code handles the messages of a queue, on each host, reads
// routes.go.
package assembly
