// Package awsbackend puts iac-ci's AWS adapters together. It promises four things:
//
//   - One description of every AWS resource iac-ci uses (Describe): the queues of
//     queues.Topology with their visibility and redrive policies, the two DynamoDB tables with
//     their keys, indexes and TTL, the internal and done buckets with the result notification,
//     the run-key parameter prefix, the SSM document and the CodeBuild project. Names derive
//     from one prefix. `iac-ci aws-setup --print` renders it as JSON, so that the Terraform in
//     infra/ can be checked against it.
//   - One configuration (FromEnv), read from IAC_CI_* variables with defaults derived from
//     IAC_CI_PREFIX; region, credentials and endpoint come from the SDK's own variables
//     (AWS_REGION, AWS_ENDPOINT_URL, ...). A missing or wrong setting is an error naming the
//     variable, and Check confirms at start, with one cheap call per resource, that every
//     resource exists.
//   - Setup, which creates every resource that an emulator or a fresh account needs
//     (idempotently) and says what it did.
//   - Open, which returns the ports (queues, store, blobs, secrets) on those resources, with
//     clients that can count their calls (internal/awscalls) and, for emulators that are not
//     safe under concurrent requests such as moto_server, let only one request be in flight;
//     Backend.Ports hands them to package assembly, which builds everything on top of them.
//
// It is wiring only: the engine, the consumers and their loops, the caches and the retry rules
// live in the packages they serve.
package awsbackend
