package awsbackend

import (
	"context"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"
	"github.com/aws/aws-sdk-go-v2/service/ssm"
	ssmtypes "github.com/aws/aws-sdk-go-v2/service/ssm/types"
	"github.com/aws/smithy-go/middleware"
)

// What DynamoDB and KMS bill is not one unit per call, so Calls also estimates their units from
// each call's input (and a query's output). The estimate assumes what iac-ci's items are: under
// 1 KB written and 4 KB read (an order's item grows with its log tail, up to 4 KB more). Per the
// DynamoDB developer guide: a write of an item up to 1 KB is one write request unit, a
// transactional write two; a strongly consistent read of up to 4 KB is one read request unit, an
// eventually consistent one half; a query is billed on the data it reads, rounded up to 4 KB.
// SSM SecureString parameters cost one KMS request to encrypt or decrypt, and so does reading a
// Secrets Manager secret.

// estimateUnits adds the units of one call.
func (c *Calls) estimateUnits(stack *middleware.Stack) error {
	if _, presign := stack.Initialize.Get(presignStep); presign {
		return nil
	}
	return stack.Initialize.Add(middleware.InitializeMiddlewareFunc("awsbackend.units",
		func(ctx context.Context, in middleware.InitializeInput, next middleware.InitializeHandler) (middleware.InitializeOutput, middleware.Metadata, error) {
			out, md, err := next.HandleInitialize(ctx, in)
			w, r, k := units(in.Parameters, out.Result)
			c.mu.Lock()
			c.writeUnits += w
			c.readUnits += r
			c.kmsRequests += k
			c.mu.Unlock()
			return out, md, err
		}), middleware.After)
}

// units estimates the write and read request units and the KMS requests of one call.
func units(in, out any) (write, read float64, kms int64) {
	consistent := func(strong *bool) float64 {
		if aws.ToBool(strong) {
			return 1
		}
		return 0.5
	}
	queried := func(scanned int32, strong *bool) float64 {
		// Items under 1 KB: four fit in the 4 KB of one read unit; a query reads at least one.
		return float64(max(1, (scanned+3)/4)) * consistent(strong)
	}
	switch p := in.(type) {
	case *dynamodb.PutItemInput, *dynamodb.UpdateItemInput, *dynamodb.DeleteItemInput:
		write = 1
	case *dynamodb.BatchWriteItemInput:
		for _, reqs := range p.RequestItems {
			write += float64(len(reqs))
		}
	case *dynamodb.TransactWriteItemsInput:
		write = 2 * float64(len(p.TransactItems))
	case *dynamodb.GetItemInput:
		read = consistent(p.ConsistentRead)
	case *dynamodb.BatchGetItemInput:
		for _, ka := range p.RequestItems {
			read += float64(len(ka.Keys)) * consistent(ka.ConsistentRead)
		}
	case *dynamodb.QueryInput:
		if o, ok := out.(*dynamodb.QueryOutput); ok {
			read = queried(o.ScannedCount, p.ConsistentRead)
		}
	case *dynamodb.ScanInput:
		if o, ok := out.(*dynamodb.ScanOutput); ok {
			read = queried(o.ScannedCount, p.ConsistentRead)
		}
	case *ssm.PutParameterInput:
		if p.Type == ssmtypes.ParameterTypeSecureString {
			kms = 1
		}
	case *ssm.GetParameterInput:
		if aws.ToBool(p.WithDecryption) {
			kms = 1
		}
	case *secretsmanager.GetSecretValueInput:
		kms = 1
	}
	return write, read, kms
}
